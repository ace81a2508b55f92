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

#include "wa_normalize.h"


const char *wa_stream_names[WA_STREAM_COUNT] = {
    "messages", "statuses", "account"
};


/* fields the normalizer sets itself: a generic value never takes them */
static const char *wa_reserved[] = {
    "kind", "field", "event_id", "waba_id", "phone_number_id",
    "display_phone_number", "ts", "received_at", "raw", "error", NULL
};

#define WA_DUMP_FLAGS  (JSON_COMPACT | JSON_ENCODE_ANY                     \
                        | JSON_REAL_PRECISION(15))
#define WA_DIGEST_HEX  32


typedef struct {
    wa_batch_t    *batch;
    const char    *field;          /* the change's field name */
    json_t        *entry;
    json_t        *value;
    const char    *received;
    size_t         received_len;
    wa_field_t     f[WA_EVENT_MAX_FIELDS];
    size_t         n;
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


static char *
wa_strndup(wa_batch_t *b, const char *s, size_t len)
{
    char  *p;

    p = wa_alloc(b, len + 1);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';

    return p;
}


/* serializes json into the scratch buffer; returns its length or -1 */
static long
wa_dump_scratch(wa_batch_t *b, json_t *json, size_t flags)
{
    char    *p;
    size_t   n;

    /*
     * Room for most items at once (a dump that does not fit is done twice),
     * and small enough to come from an nginx pool's own blocks.
     */
    if (b->scratch == NULL) {
        b->scratch = wa_alloc(b, 2048);
        if (b->scratch == NULL) {
            return -1;
        }

        b->scratch_size = 2048;
    }

    for ( ;; ) {
        n = json_dumpb(json, b->scratch, b->scratch_size, flags);
        if (n == 0) {
            /* jansson refuses nothing we parsed, but be safe */
            return 0;
        }

        if (n <= b->scratch_size) {
            return (long) n;
        }

        /* from the caller's allocator, as everything else */
        p = wa_alloc(b, n + 4096);
        if (p == NULL) {
            return -1;
        }

        b->scratch = p;
        b->scratch_size = n + 4096;
    }
}


static int
wa_dump(wa_batch_t *b, json_t *json, const char **out, size_t *len)
{
    long   n;
    char  *p;

    n = wa_dump_scratch(b, json, WA_DUMP_FLAGS);
    if (n < 0) {
        return -1;
    }

    p = wa_alloc(b, (size_t) n);
    if (p == NULL) {
        return -1;
    }

    memcpy(p, b->scratch, (size_t) n);
    *out = p;
    *len = (size_t) n;

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


/*
 * A digest that names an item without an id of its own: the field, the
 * WABA, the entry's time and the item with its keys sorted, so that a
 * redelivery with another key order gets the same id.
 */
static const char *
wa_digest_id(wa_builder_t *bd, json_t *item)
{
    char           *id;
    long            n;
    const char     *s;
    json_t         *prefix;
    EVP_MD_CTX     *md;
    unsigned char   d[EVP_MAX_MD_SIZE];
    unsigned int    dlen;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        bd->batch->error = "out of memory";
        return NULL;
    }

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);

    s = bd->field ? bd->field : "";
    EVP_DigestUpdate(md, s, strlen(s) + 1);

    prefix = json_pack("[O?O?]",
        bd->entry ? json_object_get(bd->entry, "id") : NULL,
        bd->entry ? json_object_get(bd->entry, "time") : NULL);

    n = -1;
    if (prefix != NULL) {
        n = wa_dump_scratch(bd->batch, prefix, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(prefix);
    }

    if (n >= 0) {
        EVP_DigestUpdate(md, bd->batch->scratch, (size_t) n);
        n = wa_dump_scratch(bd->batch, item,
                            JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    }

    if (n < 0) {
        EVP_MD_CTX_free(md);
        return NULL;
    }

    EVP_DigestUpdate(md, bd->batch->scratch, (size_t) n);
    EVP_DigestFinal_ex(md, d, &dlen);
    EVP_MD_CTX_free(md);

    id = wa_alloc(bd->batch, WA_DIGEST_HEX + 1);
    if (id == NULL) {
        return NULL;
    }

    wa_hex(d, WA_DIGEST_HEX / 2, id);
    id[WA_DIGEST_HEX] = '\0';

    return id;
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
wa_add_json(wa_builder_t *bd, const char *name, size_t name_len, json_t *v)
{
    char    buf[64];
    char   *p;
    int     n;

    if (v == NULL) {
        return 0;
    }

    switch (json_typeof(v)) {

    case JSON_STRING:
        wa_add(bd, name, name_len, json_string_value(v),
               json_string_length(v));
        return 0;

    case JSON_INTEGER:
        n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        break;

    case JSON_REAL:
        n = (int) json_dumpb(v, buf, sizeof(buf) - 1, WA_DUMP_FLAGS);
        break;

    case JSON_TRUE:
        wa_add(bd, name, name_len, "true", 4);
        return 0;

    case JSON_FALSE:
        wa_add(bd, name, name_len, "false", 5);
        return 0;

    default:
        return 0;
    }

    if (n <= 0 || (size_t) n >= sizeof(buf)) {
        return 0;
    }

    p = wa_strndup(bd->batch, buf, (size_t) n);
    if (p == NULL) {
        return -1;
    }

    wa_add(bd, name, name_len, p, (size_t) n);

    return 0;
}


/* the value at a path of object keys, or NULL */
static json_t *
wa_path(json_t *j, const char *k1, const char *k2, const char *k3)
{
    if (j == NULL || k1 == NULL) {
        return j;
    }

    j = json_object_get(j, k1);
    if (k2 == NULL || j == NULL) {
        return j;
    }

    j = json_object_get(j, k2);
    if (k3 == NULL || j == NULL) {
        return j;
    }

    return json_object_get(j, k3);
}


static int
wa_add_path(wa_builder_t *bd, const char *name, json_t *j, const char *k1,
    const char *k2, const char *k3)
{
    return wa_add_json(bd, name, strlen(name), wa_path(j, k1, k2, k3));
}


static json_t *
wa_first(json_t *array)
{
    return json_is_array(array) ? json_array_get(array, 0) : NULL;
}


/* the fields every event starts with */
static int
wa_begin(wa_builder_t *bd, const char *kind, const char *event_id,
    json_t *ts)
{
    json_t  *v;

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
        ts = json_object_get(bd->entry, "time");
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

    /* raw always fits: it is kept out of the field limit */
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
    const char *event_id, json_t *item)
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
wa_unparsed(wa_builder_t *bd, json_t *item, const char *why)
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


/* the contact a message is from (or to, for echoes) */
static json_t *
wa_contact(json_t *value, json_t *wa_id)
{
    size_t   i;
    json_t  *contacts, *c;

    contacts = json_object_get(value, "contacts");
    if (!json_is_array(contacts)) {
        return NULL;
    }

    json_array_foreach(contacts, i, c) {
        if (wa_id != NULL && json_equal(json_object_get(c, "wa_id"), wa_id)) {
            return c;
        }
    }

    return json_array_get(contacts, 0);
}


/* the readable text of a message, whatever its type */
static json_t *
wa_message_text(json_t *m)
{
    const char  *type, *itype;
    json_t      *obj, *v;

    type = json_string_value(json_object_get(m, "type"));
    if (type == NULL) {
        return NULL;
    }

    if (strcmp(type, "edit") == 0) {
        return wa_message_text(wa_path(m, "edit", "message", NULL));
    }

    obj = json_object_get(m, type);
    if (!json_is_object(obj)) {
        return NULL;
    }

    if (strcmp(type, "interactive") == 0) {
        itype = json_string_value(json_object_get(obj, "type"));
        if (itype == NULL) {
            return NULL;
        }

        v = wa_path(obj, itype, "title", NULL);
        return v ? v : wa_path(obj, itype, "body", NULL);
    }

    if (strcmp(type, "reaction") == 0) {
        return json_object_get(obj, "emoji");
    }

    v = json_object_get(obj, "body");
    if (v == NULL) {
        v = json_object_get(obj, "caption");
    }

    if (v == NULL) {
        v = json_object_get(obj, "text");
    }

    return json_is_string(v) ? v : NULL;
}


/* the fields of a message, an echo or a history message */
static int
wa_message_fields(wa_builder_t *bd, json_t *m)
{
    const char  *type, *itype;
    json_t      *contact, *v, *obj;

    type = json_string_value(json_object_get(m, "type"));
    contact = wa_contact(bd->value, json_object_get(m, "from"));

    v = json_object_get(m, "from_user_id");
    if (v == NULL && contact != NULL
        && json_equal(json_object_get(contact, "wa_id"),
                      json_object_get(m, "from")))
    {
        v = json_object_get(contact, "user_id");
    }

    obj = NULL;
    if (type != NULL) {
        obj = json_object_get(m, type);
    }

    itype = json_string_value(json_object_get(obj, "type"));

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
        || wa_add_path(bd, "error_code", wa_first(json_object_get(m,
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
        v = json_object_get(obj, "wa_id");
        return wa_add_json(bd, "new_wa_id", 9,
                           v ? v : json_object_get(obj, "new_wa_id"));
    }

    if (strcmp(type, "interactive") == 0 && itype != NULL) {
        wa_add_str(bd, "interactive_type", itype);

        return wa_add_path(bd, "reply_id", obj, itype, "id", NULL);
    }

    return 0;
}


static int
wa_message(wa_builder_t *bd, json_t *m, const char *kind)
{
    const char  *id;

    if (!json_is_object(m)) {
        return wa_unparsed(bd, m, "a message is not an object");
    }

    id = json_string_value(json_object_get(m, "id"));
    if (id == NULL || *id == '\0') {
        id = wa_digest_id(bd, m);
        if (id == NULL) {
            return -1;
        }
    }

    if (wa_begin(bd, kind, id, json_object_get(m, "timestamp")) != 0
        || wa_message_fields(bd, m) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_MESSAGES, kind, id, m);
}


static int
wa_status(wa_builder_t *bd, json_t *s)
{
    char        *id;
    size_t       len, slen;
    const char  *wamid, *status;
    json_t      *err;

    if (!json_is_object(s)) {
        return wa_unparsed(bd, s, "a status is not an object");
    }

    wamid = json_string_value(json_object_get(s, "id"));
    status = json_string_value(json_object_get(s, "status"));

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

    err = wa_first(json_object_get(s, "errors"));

    if (wa_begin(bd, "status", id, json_object_get(s, "timestamp")) != 0
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
wa_error(wa_builder_t *bd, json_t *e)
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
wa_flatten(wa_builder_t *bd, json_t *obj, const char *outer)
{
    char        *name;
    size_t       olen, klen;
    const char  *key;
    json_t      *v;

    olen = outer ? strlen(outer) : 0;

    json_object_foreach(obj, key, v) {

        if (outer == NULL) {
            if (strcmp(key, "metadata") == 0
                || strcmp(key, "messaging_product") == 0
                || strcmp(key, "display_phone_number") == 0
                || strcmp(key, "phone_number_id") == 0)
            {
                continue;
            }

            if (json_is_object(v)) {
                if (wa_flatten(bd, v, key) != 0) {
                    return -1;
                }

                continue;
            }
        }

        /* an empty name is no field name: the value stays in raw */
        if (json_is_object(v) || json_is_array(v) || json_is_null(v)
            || key[0] == '\0')
        {
            continue;
        }

        klen = strlen(key);

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
                    json_object_get(bd->entry, "time") ? NULL
                    : json_object_get(bd->value, "timestamp")) != 0
        || wa_flatten(bd, bd->value, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, bd->value);
}


static int
wa_preference(wa_builder_t *bd, json_t *p)
{
    const char  *id;

    if (!json_is_object(p)) {
        return wa_unparsed(bd, p, "a user preference is not an object");
    }

    id = wa_digest_id(bd, p);

    if (id == NULL
        || wa_begin(bd, bd->field, id, json_object_get(p, "timestamp")) != 0
        || wa_flatten(bd, p, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, p);
}


/* every item of value[name]; returns how many, or -1 */
static long
wa_items(wa_builder_t *bd, const char *name,
    int (*handler)(wa_builder_t *bd, json_t *item))
{
    size_t   i;
    json_t  *array, *item;

    array = json_object_get(bd->value, name);
    if (array == NULL) {
        return 0;
    }

    if (!json_is_array(array)) {
        return wa_unparsed(bd, array, "an item list is not an array") ? -1
                                                                       : 1;
    }

    json_array_foreach(array, i, item) {
        if (handler(bd, item) != 0) {
            return -1;
        }
    }

    return (long) json_array_size(array);
}


static int
wa_inbound(wa_builder_t *bd, json_t *m)
{
    return wa_message(bd, m, "message");
}


static int
wa_echo(wa_builder_t *bd, json_t *m)
{
    return wa_message(bd, m, bd->field);
}


/* history: value.history[].threads[].messages[] */
static long
wa_history(wa_builder_t *bd)
{
    long     n;
    size_t   i, j, k;
    json_t  *history, *h, *threads, *t, *messages, *m;

    history = json_object_get(bd->value, "history");
    if (!json_is_array(history)) {
        return 0;
    }

    n = 0;

    json_array_foreach(history, i, h) {
        threads = json_object_get(h, "threads");

        json_array_foreach(threads, j, t) {
            messages = json_object_get(t, "messages");

            json_array_foreach(messages, k, m) {
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
wa_change(wa_builder_t *bd, json_t *change)
{
    long     n, total;
    json_t  *field;

    if (!json_is_object(change)) {
        bd->field = NULL;
        bd->value = NULL;
        return wa_unparsed(bd, change, "a change is not an object");
    }

    field = json_object_get(change, "field");
    bd->value = json_object_get(change, "value");
    bd->field = json_string_value(field);

    if (bd->field == NULL || !json_is_object(bd->value)) {
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
    unsigned char  d[EVP_MAX_MD_SIZE];
    unsigned int   dlen;
    char          *id;

    if (!EVP_Digest(body, len, d, &dlen, EVP_sha256(), NULL)) {
        bd->batch->error = "digest failed";
        return -1;
    }

    id = wa_alloc(bd->batch, WA_DIGEST_HEX + 1);
    if (id == NULL) {
        return -1;
    }

    wa_hex(d, WA_DIGEST_HEX / 2, id);
    id[WA_DIGEST_HEX] = '\0';

    if (wa_begin(bd, "unparsed", id, NULL) != 0) {
        return -1;
    }

    wa_add_str(bd, "error", bd->batch->error);

    return wa_commit(bd, WA_STREAM_ACCOUNT, "unparsed", id, body, len);
}


int
wa_normalize(wa_batch_t *b, const char *body, size_t len,
    int64_t received_ms)
{
    size_t         i, j;
    json_t        *root, *entries, *entry, *changes, *change;
    const char    *object;
    json_error_t   err;
    char           received[24];
    wa_builder_t   bd;

    b->events = NULL;
    b->nevents = 0;
    b->nalloc = 0;
    b->error = NULL;
    b->root = NULL;
    b->scratch = NULL;
    b->scratch_size = 0;

    memset(&bd, 0, sizeof(wa_builder_t));
    bd.batch = b;
    bd.received_len = (size_t) snprintf(received, sizeof(received), "%lld",
                                        (long long) received_ms);
    bd.received = wa_strndup(b, received, bd.received_len);
    if (bd.received == NULL) {
        return -1;
    }

    root = json_loadb(body, len, JSON_ALLOW_NUL, &err);
    if (root == NULL) {
        snprintf(b->error_buf, sizeof(b->error_buf),
                 "invalid JSON at byte %d: %.100s", err.position, err.text);
        b->error = b->error_buf;
        return wa_body_unparsed(&bd, body, len);
    }

    b->root = root;

    object = json_string_value(json_object_get(root, "object"));
    entries = json_object_get(root, "entry");

    if (object == NULL || strcmp(object, "whatsapp_business_account") != 0
        || !json_is_array(entries))
    {
        b->error = "not a WhatsApp envelope (object "
                   "\"whatsapp_business_account\" with an \"entry\" array)";
        return wa_body_unparsed(&bd, body, len);
    }

    json_array_foreach(entries, i, entry) {
        bd.entry = entry;
        bd.field = NULL;
        bd.value = NULL;

        changes = json_object_get(entry, "changes");

        if (!json_is_object(entry) || !json_is_array(changes)) {
            bd.entry = NULL;
            if (wa_unparsed(&bd, entry, "an entry has no changes array")
                != 0)
            {
                return -1;
            }

            continue;
        }

        json_array_foreach(changes, j, change) {
            if (wa_change(&bd, change) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


void
wa_batch_free(wa_batch_t *b)
{
    if (b->root) {
        json_decref((json_t *) b->root);
        b->root = NULL;
    }

    b->scratch = NULL;
    b->scratch_size = 0;
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
