/*
 * wa-relay: split one WhatsApp webhook body into normalized events.
 *
 * One event per message, status and error of a "messages" change, per echo
 * of "smb_message_echoes", per message of "history", per preference of
 * "user_preferences", and one per change for every other field, known or
 * not.  Pieces that do not have the envelope's shape are kept as "unparsed"
 * events, so nothing Meta sent is dropped.  The schema is docs/events.md.
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wa_json.h"
#include "wa_normalize.h"


const char *wa_stream_names[WA_STREAM_COUNT] = {
    "messages", "statuses", "account"
};


/* fields the normalizer sets itself: a generic value never takes them */
static const char *wa_reserved[] = {
    "kind", "field", "event_id", "waba_id", "phone_number_id",
    "display_phone_number", "ts", "received_at", "raw", "error", NULL
};

#define WA_DIGEST_HEX  32

#define WA_IS(v, t)       wa_json_is(v, WA_JSON_ ## t)
#define WA_IS_ARRAY(v)    WA_IS(v, ARRAY)
#define WA_IS_OBJECT(v)   WA_IS(v, OBJECT)
#define WA_IS_STRING(v)   WA_IS(v, STRING)
#define WA_IS_NULL(v)     WA_IS(v, NULL)


typedef struct {
    wa_batch_t       *batch;
    const char       *field;          /* the change's field name */
    const wa_json_t  *entry;
    const wa_json_t  *value;
    const char       *received;
    size_t            received_len;
    wa_field_t        f[WA_EVENT_MAX_FIELDS + 1];   /* and raw */
    size_t            n;
} wa_builder_t;


static void *
wa_alloc(wa_batch_t *b, size_t size)
{
    void  *p;

    p = b->alloc(b->alloc_data, size ? size : 1);
    if (p == NULL) {
        b->error = "out of memory";
    }

    return p;
}


/*
 * v in decimal, in memory from the caller's allocator: every event has one
 * or two integers, and snprintf() cost as much as the rest of the event's
 * fields
 */
static const char *
wa_decimal(wa_batch_t *b, long long v, size_t *len)
{
    char                buf[24], *p, *out;
    unsigned long long  u;

    p = buf + sizeof(buf);
    u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;

    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        *--p = '-';
    }

    *len = (size_t) (buf + sizeof(buf) - p);

    out = wa_alloc(b, *len + 1);
    if (out == NULL) {
        return NULL;
    }

    memcpy(out, p, *len);
    out[*len] = '\0';

    return out;
}


/* v as compact JSON, in memory from the caller's allocator */
static int
wa_dump(wa_batch_t *b, const wa_json_t *v, const char **out, size_t *len)
{
    *out = wa_json_dump(b->parser, v, b->alloc, b->alloc_data, len);

    if (*out == NULL) {
        b->error = "out of memory";
        return -1;
    }

    return 0;
}


static void
wa_hex(const unsigned char *in, size_t n, char *out)
{
    static const char  hex[] = "0123456789abcdef";
    size_t             i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0xf];
    }
}


/* the hex of the SHA-256 of the pieces, truncated to WA_DIGEST_HEX */
static const char *
wa_digest_hex(wa_batch_t *b, const char **piece, const size_t *len, int n)
{
    int             i;
    char           *id;
    EVP_MD_CTX     *md;
    unsigned char   d[EVP_MAX_MD_SIZE];
    unsigned int    dlen;

    id = wa_alloc(b, WA_DIGEST_HEX + 1);
    if (id == NULL) {
        return NULL;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        b->error = "out of memory";
        return NULL;
    }

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);

    for (i = 0; i < n; i++) {
        EVP_DigestUpdate(md, piece[i], len[i]);
    }

    EVP_DigestFinal_ex(md, d, &dlen);
    EVP_MD_CTX_free(md);

    wa_hex(d, WA_DIGEST_HEX / 2, id);
    id[WA_DIGEST_HEX] = '\0';

    return id;
}


/* json as jansson writes it with flags, from the caller's allocator */
static int
wa_dump_jansson(wa_batch_t *b, json_t *json, size_t flags, const char **out,
    size_t *len)
{
    char    *p;
    size_t   n;

    n = json_dumpb(json, NULL, 0, flags);

    p = wa_alloc(b, n);
    if (p == NULL) {
        return -1;
    }

    *out = p;
    *len = json_dumpb(json, p, n, flags);

    return 0;
}


/*
 * v as digests see it: jansson's compact form with the keys sorted, or
 * simdjson's when jansson cannot hold it (an integer past int64); null for
 * nothing.
 */
static int
wa_canonical(wa_batch_t *b, const wa_json_t *v, const char **out,
    size_t *len)
{
    int      rc;
    json_t  *j;

    if (v == NULL) {
        *out = "null";
        *len = 4;
        return 0;
    }

    if (wa_dump(b, v, out, len) != 0) {
        return -1;
    }

    j = json_loadb(*out, *len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j == NULL) {
        return 0;
    }

    rc = wa_dump_jansson(b, j, JSON_COMPACT | JSON_ENCODE_ANY
                               | JSON_SORT_KEYS, out, len);
    json_decref(j);

    return rc;
}


/*
 * A digest that names an item without an id of its own: the field, the
 * WABA and the entry's time as the array [id,time], and the item with its
 * keys sorted, so that a redelivery with another key order gets the same
 * id.
 */
static const char *
wa_digest_id(wa_builder_t *bd, const wa_json_t *item)
{
    const char  *piece[7];
    size_t       len[7];

    piece[0] = bd->field ? bd->field : "";
    len[0] = strlen(piece[0]) + 1;
    piece[1] = "[";
    len[1] = 1;
    piece[3] = ",";
    len[3] = 1;
    piece[5] = "]";
    len[5] = 1;

    if (wa_canonical(bd->batch, wa_json_get(bd->entry, "id"), &piece[2],
                     &len[2]) != 0
        || wa_canonical(bd->batch, wa_json_get(bd->entry, "time"),
                        &piece[4], &len[4]) != 0
        || wa_canonical(bd->batch, item, &piece[6], &len[6]) != 0)
    {
        return NULL;
    }

    return wa_digest_hex(bd->batch, piece, len, 7);
}


static void
wa_add(wa_builder_t *bd, const char *name, size_t name_len,
    const char *data, size_t len)
{
    if (data == NULL || bd->n == WA_EVENT_MAX_FIELDS) {
        return;
    }

    bd->f[bd->n].name = name;
    bd->f[bd->n].name_len = name_len;
    bd->f[bd->n].data = data;
    bd->f[bd->n].len = len;
    bd->n++;
}


static void
wa_add_str(wa_builder_t *bd, const char *name, const char *data)
{
    if (data != NULL) {
        wa_add(bd, name, strlen(name), data, strlen(data));
    }
}


/*
 * Adds a scalar JSON value as text: strings as they are, numbers as JSON
 * writes them, booleans as true/false.  Null, objects and arrays add
 * nothing.  Returns -1 only when memory ran out.
 */
static int
wa_add_json(wa_builder_t *bd, const char *name, size_t name_len,
    const wa_json_t *v)
{
    size_t       len;
    const char  *p;

    if (v == NULL) {
        return 0;
    }

    switch (v->type) {

    case WA_JSON_STRING:
        wa_add(bd, name, name_len, v->str, v->len);
        return 0;

    case WA_JSON_INTEGER:
        p = wa_decimal(bd->batch, (long long) v->integer, &len);
        if (p == NULL) {
            return -1;
        }

        wa_add(bd, name, name_len, p, len);
        return 0;

    case WA_JSON_NUMBER:
        if (wa_dump(bd->batch, v, &p, &len) != 0) {
            return -1;
        }

        wa_add(bd, name, name_len, p, len);
        return 0;

    case WA_JSON_TRUE:
        wa_add(bd, name, name_len, "true", 4);
        return 0;

    case WA_JSON_FALSE:
        wa_add(bd, name, name_len, "false", 5);
        return 0;

    default:
        return 0;
    }
}


/* the value at a path of object keys, or NULL */
static const wa_json_t *
wa_path(const wa_json_t *j, const char *k1, const char *k2, const char *k3)
{
    if (j == NULL || k1 == NULL) {
        return j;
    }

    j = wa_json_get(j, k1);
    if (k2 == NULL || j == NULL) {
        return j;
    }

    j = wa_json_get(j, k2);
    if (k3 == NULL || j == NULL) {
        return j;
    }

    return wa_json_get(j, k3);
}


static int
wa_add_path(wa_builder_t *bd, const char *name, const wa_json_t *j,
    const char *k1, const char *k2, const char *k3)
{
    return wa_add_json(bd, name, strlen(name), wa_path(j, k1, k2, k3));
}


static const wa_json_t *
wa_first(const wa_json_t *array)
{
    return (WA_IS_ARRAY(array) && array->len) ? &array->items[0] : NULL;
}


/* the items of an array (none for anything else) */
#define wa_foreach(array, i, item)                                          \
    for (i = 0; WA_IS_ARRAY(array) && i < (array)->len                      \
                && ((item) = &(array)->items[i]); i++)


/* the fields every event starts with */
static int
wa_begin(wa_builder_t *bd, const char *kind, const char *event_id,
    const wa_json_t *ts)
{
    const wa_json_t  *v;

    bd->n = 0;

    wa_add_str(bd, "kind", kind);
    wa_add_str(bd, "field", bd->field);
    wa_add_str(bd, "event_id", event_id);

    if (bd->entry != NULL
        && wa_add_path(bd, "waba_id", bd->entry, "id", NULL, NULL) != 0)
    {
        return -1;
    }

    v = wa_path(bd->value, "metadata", "phone_number_id", NULL);
    if (v == NULL) {
        v = wa_path(bd->value, "phone_number_id", NULL, NULL);
    }

    if (wa_add_json(bd, "phone_number_id", 15, v) != 0) {
        return -1;
    }

    v = wa_path(bd->value, "metadata", "display_phone_number", NULL);
    if (v == NULL) {
        v = wa_path(bd->value, "display_phone_number", NULL, NULL);
    }

    if (wa_add_json(bd, "display_phone_number", 20, v) != 0) {
        return -1;
    }

    if (ts == NULL && bd->entry != NULL) {
        ts = wa_json_get(bd->entry, "time");
    }

    if (wa_add_json(bd, "ts", 2, ts) != 0) {
        return -1;
    }

    wa_add(bd, "received_at", 11, bd->received, bd->received_len);

    return 0;
}


/* closes the event: adds "raw" and appends it to the batch */
static int
wa_commit(wa_builder_t *bd, wa_stream_t stream, const char *kind,
    const char *event_id, const char *raw, size_t raw_len)
{
    size_t       nalloc;
    wa_batch_t  *b;
    wa_event_t  *ev, *events;

    b = bd->batch;

    if (b->nevents == b->nalloc) {
        nalloc = b->nalloc ? 2 * b->nalloc : 16;

        events = wa_alloc(b, nalloc * sizeof(wa_event_t));
        if (events == NULL) {
            return -1;
        }

        if (b->nevents) {
            memcpy(events, b->events, b->nevents * sizeof(wa_event_t));
        }

        b->events = events;
        b->nalloc = nalloc;
    }

    /* raw always fits: f has a place for it past the field limit */
    bd->f[bd->n].name = "raw";
    bd->f[bd->n].name_len = 3;
    bd->f[bd->n].data = raw;
    bd->f[bd->n].len = raw_len;

    ev = &b->events[b->nevents];
    ev->stream = stream;
    ev->kind = kind;
    ev->kind_len = strlen(kind);
    ev->event_id = event_id;
    ev->event_id_len = strlen(event_id);
    ev->nfields = bd->n + 1;

    ev->fields = wa_alloc(b, ev->nfields * sizeof(wa_field_t));
    if (ev->fields == NULL) {
        return -1;
    }

    memcpy(ev->fields, bd->f, ev->nfields * sizeof(wa_field_t));
    b->nevents++;

    return 0;
}


static int
wa_commit_json(wa_builder_t *bd, wa_stream_t stream, const char *kind,
    const char *event_id, const wa_json_t *item)
{
    size_t       len;
    const char  *raw;

    if (wa_dump(bd->batch, item, &raw, &len) != 0) {
        return -1;
    }

    return wa_commit(bd, stream, kind, event_id, raw, len);
}


static void
wa_set_error(wa_batch_t *b, const char *fmt, const char *arg)
{
    if (b->error == NULL) {
        snprintf(b->error_buf, sizeof(b->error_buf), fmt, arg);
        b->error = b->error_buf;
    }
}


/* a piece that has not the shape it should have: kept whole */
static int
wa_unparsed(wa_builder_t *bd, const wa_json_t *item, const char *why)
{
    const char  *id;

    wa_set_error(bd->batch, "%s", why);

    id = wa_digest_id(bd, item);
    if (id == NULL || wa_begin(bd, "unparsed", id, NULL) != 0) {
        return -1;
    }

    wa_add_str(bd, "error", why);

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, "unparsed", id, item);
}


/* two scalars with the same type and value (ids are what it compares) */
static int
wa_same(const wa_json_t *a, const wa_json_t *b)
{
    if (a == NULL || b == NULL || a->type != b->type) {
        return 0;
    }

    switch (a->type) {

    case WA_JSON_STRING:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;

    case WA_JSON_INTEGER:
        return a->integer == b->integer;

    default:
        return 0;
    }
}


/* the contact a message is from (or to, for echoes) */
static const wa_json_t *
wa_contact(const wa_json_t *value, const wa_json_t *wa_id)
{
    size_t   i;
    const wa_json_t  *contacts, *c;

    contacts = wa_json_get(value, "contacts");
    if (!WA_IS_ARRAY(contacts)) {
        return NULL;
    }

    wa_foreach(contacts, i, c) {
        if (wa_id != NULL && wa_same(wa_json_get(c, "wa_id"), wa_id)) {
            return c;
        }
    }

    return wa_first(contacts);
}


/* the readable text of a message, whatever its type */
static const wa_json_t *
wa_message_text(const wa_json_t *m)
{
    const char  *type, *itype;
    const wa_json_t      *obj, *v;

    type = wa_json_string(wa_json_get(m, "type"));
    if (type == NULL) {
        return NULL;
    }

    if (strcmp(type, "edit") == 0) {
        return wa_message_text(wa_path(m, "edit", "message", NULL));
    }

    obj = wa_json_get(m, type);
    if (!WA_IS_OBJECT(obj)) {
        return NULL;
    }

    if (strcmp(type, "interactive") == 0) {
        itype = wa_json_string(wa_json_get(obj, "type"));
        if (itype == NULL) {
            return NULL;
        }

        v = wa_path(obj, itype, "title", NULL);
        return v ? v : wa_path(obj, itype, "body", NULL);
    }

    if (strcmp(type, "reaction") == 0) {
        return wa_json_get(obj, "emoji");
    }

    v = wa_json_get(obj, "body");
    if (v == NULL) {
        v = wa_json_get(obj, "caption");
    }

    if (v == NULL) {
        v = wa_json_get(obj, "text");
    }

    return WA_IS_STRING(v) ? v : NULL;
}


/* the fields of a message, an echo or a history message */
static int
wa_message_fields(wa_builder_t *bd, const wa_json_t *m)
{
    const char  *type, *itype;
    const wa_json_t      *contact, *v, *obj;

    type = wa_json_string(wa_json_get(m, "type"));
    contact = wa_contact(bd->value, wa_json_get(m, "from"));

    v = wa_json_get(m, "from_user_id");
    if (v == NULL && contact != NULL
        && wa_same(wa_json_get(contact, "wa_id"),
                      wa_json_get(m, "from")))
    {
        v = wa_json_get(contact, "user_id");
    }

    obj = NULL;
    if (type != NULL) {
        obj = wa_json_get(m, type);
    }

    itype = wa_json_string(wa_json_get(obj, "type"));

    if (wa_add_path(bd, "msg_id", m, "id", NULL, NULL) != 0
        || wa_add_path(bd, "from", m, "from", NULL, NULL) != 0
        || wa_add_json(bd, "from_user_id", 12, v) != 0
        || wa_add_path(bd, "to", m, "to", NULL, NULL) != 0
        || wa_add_path(bd, "to_user_id", m, "to_user_id", NULL, NULL) != 0
        || wa_add_path(bd, "type", m, "type", NULL, NULL) != 0
        || wa_add_json(bd, "text", 4, wa_message_text(m)) != 0
        || wa_add_path(bd, "profile_name", contact, "profile", "name",
                       NULL) != 0
        || wa_add_path(bd, "context_id", m, "context", "id", NULL) != 0
        || wa_add_path(bd, "context_from", m, "context", "from", NULL) != 0
        || wa_add_path(bd, "forwarded", m, "context", "forwarded", NULL)
           != 0
        || wa_add_path(bd, "referral_source_type", m, "referral",
                       "source_type", NULL) != 0
        || wa_add_path(bd, "referral_source_id", m, "referral", "source_id",
                       NULL) != 0
        || wa_add_path(bd, "ctwa_clid", m, "referral", "ctwa_clid", NULL)
           != 0
        || wa_add_path(bd, "error_code", wa_first(wa_json_get(m,
                       "errors")), "code", NULL, NULL) != 0)
    {
        return -1;
    }

    if (type == NULL) {
        return 0;
    }

    if (strcmp(type, "reaction") == 0) {
        return wa_add_path(bd, "reaction_to", obj, "message_id", NULL, NULL);
    }

    if (strcmp(type, "edit") == 0 || strcmp(type, "revoke") == 0) {
        return wa_add_path(bd, "original_msg_id", obj, "original_message_id",
                           NULL, NULL);
    }

    if (strcmp(type, "button") == 0) {
        return wa_add_path(bd, "payload", obj, "payload", NULL, NULL);
    }

    if (strcmp(type, "system") == 0) {
        v = wa_json_get(obj, "wa_id");
        return wa_add_json(bd, "new_wa_id", 9,
                           v ? v : wa_json_get(obj, "new_wa_id"));
    }

    if (strcmp(type, "interactive") == 0 && itype != NULL) {
        wa_add_str(bd, "interactive_type", itype);

        return wa_add_path(bd, "reply_id", obj, itype, "id", NULL);
    }

    return 0;
}


static int
wa_message(wa_builder_t *bd, const wa_json_t *m, const char *kind)
{
    const char  *id;

    if (!WA_IS_OBJECT(m)) {
        return wa_unparsed(bd, m, "a message is not an object");
    }

    id = wa_json_string(wa_json_get(m, "id"));
    if (id == NULL || *id == '\0') {
        id = wa_digest_id(bd, m);
        if (id == NULL) {
            return -1;
        }
    }

    if (wa_begin(bd, kind, id, wa_json_get(m, "timestamp")) != 0
        || wa_message_fields(bd, m) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_MESSAGES, kind, id, m);
}


static int
wa_status(wa_builder_t *bd, const wa_json_t *s)
{
    char        *id;
    size_t       len, slen;
    const char  *wamid, *status;
    const wa_json_t      *err;

    if (!WA_IS_OBJECT(s)) {
        return wa_unparsed(bd, s, "a status is not an object");
    }

    wamid = wa_json_string(wa_json_get(s, "id"));
    status = wa_json_string(wa_json_get(s, "status"));

    if (wamid != NULL && status != NULL) {
        len = strlen(wamid);
        slen = strlen(status);

        id = wa_alloc(bd->batch, len + 1 + slen + 1);
        if (id == NULL) {
            return -1;
        }

        memcpy(id, wamid, len);
        id[len] = ':';
        memcpy(id + len + 1, status, slen + 1);

    } else {
        id = (char *) wa_digest_id(bd, s);
        if (id == NULL) {
            return -1;
        }
    }

    err = wa_first(wa_json_get(s, "errors"));

    if (wa_begin(bd, "status", id, wa_json_get(s, "timestamp")) != 0
        || wa_add_path(bd, "msg_id", s, "id", NULL, NULL) != 0
        || wa_add_path(bd, "status", s, "status", NULL, NULL) != 0
        || wa_add_path(bd, "recipient_id", s, "recipient_id", NULL, NULL)
           != 0
        || wa_add_path(bd, "recipient_user_id", s, "recipient_user_id",
                       NULL, NULL) != 0
        || wa_add_path(bd, "recipient_type", s, "recipient_type", NULL,
                       NULL) != 0
        || wa_add_path(bd, "error_code", err, "code", NULL, NULL) != 0
        || wa_add_path(bd, "error_title", err, "title", NULL, NULL) != 0
        || wa_add_path(bd, "pricing_category", s, "pricing", "category",
                       NULL) != 0
        || wa_add_path(bd, "pricing_type", s, "pricing", "type", NULL) != 0
        || wa_add_path(bd, "billable", s, "pricing", "billable", NULL) != 0
        || wa_add_path(bd, "conversation_id", s, "conversation", "id", NULL)
           != 0
        || wa_add_path(bd, "conversation_origin", s, "conversation",
                       "origin", "type") != 0
        || wa_add_path(bd, "conversation_expires", s, "conversation",
                       "expiration_timestamp", NULL) != 0
        || wa_add_path(bd, "biz_opaque_callback_data", s,
                       "biz_opaque_callback_data", NULL, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_STATUSES, "status", id, s);
}


static int
wa_error(wa_builder_t *bd, const wa_json_t *e)
{
    const char  *id;

    id = wa_digest_id(bd, e);

    if (id == NULL
        || wa_begin(bd, "error", id, NULL) != 0
        || wa_add_path(bd, "error_code", e, "code", NULL, NULL) != 0
        || wa_add_path(bd, "error_title", e, "title", NULL, NULL) != 0
        || wa_add_path(bd, "error_message", e, "message", NULL, NULL) != 0
        || wa_add_path(bd, "error_details", e, "error_data", "details",
                       NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, "error", id, e);
}


static int
wa_is_reserved(const char *name)
{
    const char  **r;

    for (r = wa_reserved; *r; r++) {
        if (strcmp(*r, name) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * The scalars of an object as flat fields, and those of the objects inside
 * it as "outer_inner"; arrays stay in "raw" only.
 */
static int
wa_flatten(wa_builder_t *bd, const wa_json_t *obj, const char *outer)
{
    char             *name;
    size_t            i, olen, klen;
    const char       *key;
    const wa_json_t  *v;

    olen = outer ? strlen(outer) : 0;

    for (i = 0; i < obj->len; i++) {
        v = &obj->items[i];
        key = v->key;

        /* a name given twice counts once, with its last value */
        if (wa_json_get(obj, key) != v) {
            continue;
        }

        if (outer == NULL) {
            if (strcmp(key, "metadata") == 0
                || strcmp(key, "messaging_product") == 0
                || strcmp(key, "display_phone_number") == 0
                || strcmp(key, "phone_number_id") == 0)
            {
                continue;
            }

            if (WA_IS_OBJECT(v)) {
                if (wa_flatten(bd, v, key) != 0) {
                    return -1;
                }

                continue;
            }
        }

        /* an empty name is no field name: the value stays in raw */
        if (WA_IS_OBJECT(v) || WA_IS_ARRAY(v) || WA_IS_NULL(v)
            || key[0] == '\0')
        {
            continue;
        }

        klen = v->key_len;

        if (outer != NULL) {
            name = wa_alloc(bd->batch, olen + 1 + klen + 1);
            if (name == NULL) {
                return -1;
            }

            memcpy(name, outer, olen);
            name[olen] = '_';
            memcpy(name + olen + 1, key, klen + 1);
            klen += olen + 1;

        } else if (wa_is_reserved(key)) {
            name = wa_alloc(bd->batch, klen + 7);
            if (name == NULL) {
                return -1;
            }

            memcpy(name, "value_", 6);
            memcpy(name + 6, key, klen + 1);
            klen += 6;

        } else {
            name = (char *) key;
        }

        if (wa_add_json(bd, name, klen, v) != 0) {
            return -1;
        }
    }

    return 0;
}


/* one event for a whole change of any field but the per-item ones */
static int
wa_change_event(wa_builder_t *bd)
{
    const char  *id;

    id = wa_digest_id(bd, bd->value);

    if (id == NULL
        || wa_begin(bd, bd->field, id,
                    wa_json_get(bd->entry, "time") ? NULL
                    : wa_json_get(bd->value, "timestamp")) != 0
        || wa_flatten(bd, bd->value, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, bd->value);
}


static int
wa_preference(wa_builder_t *bd, const wa_json_t *p)
{
    const char  *id;

    if (!WA_IS_OBJECT(p)) {
        return wa_unparsed(bd, p, "a user preference is not an object");
    }

    id = wa_digest_id(bd, p);

    if (id == NULL
        || wa_begin(bd, bd->field, id, wa_json_get(p, "timestamp")) != 0
        || wa_flatten(bd, p, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, p);
}


/* every item of value[name]; returns how many, or -1 */
static long
wa_items(wa_builder_t *bd, const char *name,
    int (*handler)(wa_builder_t *bd, const wa_json_t *item))
{
    size_t   i;
    const wa_json_t  *array, *item;

    array = wa_json_get(bd->value, name);
    if (array == NULL) {
        return 0;
    }

    if (!WA_IS_ARRAY(array)) {
        return wa_unparsed(bd, array, "an item list is not an array") ? -1
                                                                       : 1;
    }

    wa_foreach(array, i, item) {
        if (handler(bd, item) != 0) {
            return -1;
        }
    }

    return (long) array->len;
}


static int
wa_inbound(wa_builder_t *bd, const wa_json_t *m)
{
    return wa_message(bd, m, "message");
}


static int
wa_echo(wa_builder_t *bd, const wa_json_t *m)
{
    return wa_message(bd, m, bd->field);
}


/* history: value.history[].threads[].messages[] */
static long
wa_history(wa_builder_t *bd)
{
    long     n;
    size_t   i, j, k;
    const wa_json_t  *history, *h, *threads, *t, *messages, *m;

    history = wa_json_get(bd->value, "history");
    if (!WA_IS_ARRAY(history)) {
        return 0;
    }

    n = 0;

    wa_foreach(history, i, h) {
        threads = wa_json_get(h, "threads");

        wa_foreach(threads, j, t) {
            messages = wa_json_get(t, "messages");

            wa_foreach(messages, k, m) {
                if (wa_message(bd, m, "history") != 0) {
                    return -1;
                }

                n++;
            }
        }
    }

    return n;
}


static int
wa_change(wa_builder_t *bd, const wa_json_t *change)
{
    long     n, total;
    const wa_json_t  *field;

    if (!WA_IS_OBJECT(change)) {
        bd->field = NULL;
        bd->value = NULL;
        return wa_unparsed(bd, change, "a change is not an object");
    }

    field = wa_json_get(change, "field");
    bd->value = wa_json_get(change, "value");
    bd->field = wa_json_string(field);

    if (bd->field == NULL || !WA_IS_OBJECT(bd->value)) {
        bd->value = NULL;
        return wa_unparsed(bd, change,
                           "a change has no field name or no value object");
    }

    total = 0;

    if (strcmp(bd->field, "messages") == 0) {
        n = wa_items(bd, "messages", wa_inbound);
        if (n < 0) {
            return -1;
        }

        total += n;

        n = wa_items(bd, "statuses", wa_status);
        if (n < 0) {
            return -1;
        }

        total += n;

        n = wa_items(bd, "errors", wa_error);
        if (n < 0) {
            return -1;
        }

        total += n;

    } else if (strcmp(bd->field, "smb_message_echoes") == 0) {
        total = wa_items(bd, "message_echoes", wa_echo);

    } else if (strcmp(bd->field, "history") == 0) {
        total = wa_history(bd);

    } else if (strcmp(bd->field, "user_preferences") == 0) {
        total = wa_items(bd, "user_preferences", wa_preference);
    }

    if (total < 0) {
        return -1;
    }

    /* a change with no items of its own is still kept, as one event */
    return total ? 0 : wa_change_event(bd);
}


static int
wa_body_unparsed(wa_builder_t *bd, const char *body, size_t len)
{
    const char  *id;

    id = wa_digest_hex(bd->batch, &body, &len, 1);

    if (id == NULL || wa_begin(bd, "unparsed", id, NULL) != 0) {
        return -1;
    }

    wa_add_str(bd, "error", bd->batch->error);

    return wa_commit(bd, WA_STREAM_ACCOUNT, "unparsed", id, body, len);
}


/*
 * Why a body is not JSON.  simdjson says what kind of fault it found;
 * jansson, run only on this rare path, also says where.
 */
static void
wa_invalid_json(wa_batch_t *b, const char *body, size_t len,
    const char *why)
{
    json_t        *j;
    json_error_t   err;

    j = json_loadb(body, len, JSON_ALLOW_NUL, &err);

    if (j == NULL) {
        snprintf(b->error_buf, sizeof(b->error_buf),
                 "invalid JSON at byte %d: %.100s", err.position, err.text);

    } else {
        json_decref(j);
        snprintf(b->error_buf, sizeof(b->error_buf), "invalid JSON: %.120s",
                 why);
    }

    b->error = b->error_buf;
}


int
wa_normalize(wa_batch_t *b, const char *body, size_t len,
    int64_t received_ms)
{
    int               rc;
    size_t            i, j;
    wa_json_t        *root;
    const char       *object, *why;
    wa_builder_t      bd;
    const wa_json_t  *entries, *entry, *changes, *change;

    b->events = NULL;
    b->nevents = 0;
    b->nalloc = 0;
    b->error = NULL;

    /*
     * nginx gives an empty body no buffer: the parser copies the body and
     * raw must point somewhere
     */
    if (body == NULL) {
        body = "";
    }

    memset(&bd, 0, sizeof(wa_builder_t));
    bd.batch = b;
    bd.received = wa_decimal(b, (long long) received_ms, &bd.received_len);
    if (bd.received == NULL) {
        return -1;
    }

    rc = wa_json_parse(b->parser, body, len, b->alloc, b->alloc_data, &root,
                       &why);

    if (rc == WA_JSON_NOMEM) {
        b->error = "out of memory";
        return -1;
    }

    if (rc != WA_JSON_OK) {
        wa_invalid_json(b, body, len, why);
        return wa_body_unparsed(&bd, body, len);
    }

    object = wa_json_string(wa_json_get(root, "object"));
    entries = wa_json_get(root, "entry");

    if (object == NULL || strcmp(object, "whatsapp_business_account") != 0
        || !WA_IS_ARRAY(entries))
    {
        b->error = "not a WhatsApp envelope (object "
                   "\"whatsapp_business_account\" with an \"entry\" array)";
        return wa_body_unparsed(&bd, body, len);
    }

    wa_foreach(entries, i, entry) {
        bd.entry = entry;
        bd.field = NULL;
        bd.value = NULL;

        changes = wa_json_get(entry, "changes");

        if (!WA_IS_OBJECT(entry) || !WA_IS_ARRAY(changes)) {
            bd.entry = NULL;
            if (wa_unparsed(&bd, entry, "an entry has no changes array")
                != 0)
            {
                return -1;
            }

            continue;
        }

        wa_foreach(changes, j, change) {
            if (wa_change(&bd, change) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


const wa_field_t *
wa_event_field(const wa_event_t *ev, const char *name)
{
    size_t  i, len;

    len = strlen(name);

    for (i = 0; i < ev->nfields; i++) {
        if (ev->fields[i].name_len == len
            && memcmp(ev->fields[i].name, name, len) == 0)
        {
            return &ev->fields[i];
        }
    }

    return NULL;
}
