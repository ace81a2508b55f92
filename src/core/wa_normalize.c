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


/*
 * A text taken from the body, or made here: always with its length, never
 * measured with strlen(), since a string of the body may hold a NUL.
 */
typedef struct {
    const char  *data;
    size_t       len;
} wa_text_t;

#define WA_TEXT(lit)  { lit, sizeof(lit) - 1 }
#define wa_text(lit)  ((wa_text_t) WA_TEXT(lit))
#define wa_text_is(t, lit)                                                  \
    ((t).len == sizeof(lit) - 1 && memcmp((t).data, lit, (t).len) == 0)


/*
 * fields the normalizer sets itself: a generated name never takes them,
 * it becomes value_<name>
 */
static const wa_text_t  wa_reserved[] = {
    WA_TEXT(WA_FIELD_KIND), WA_TEXT(WA_FIELD_FIELD),
    WA_TEXT(WA_FIELD_EVENT_ID), WA_TEXT(WA_FIELD_WABA_ID),
    WA_TEXT(WA_FIELD_PHONE_NUMBER_ID), WA_TEXT(WA_FIELD_DISPLAY_PHONE_NUMBER),
    WA_TEXT(WA_FIELD_TS), WA_TEXT(WA_FIELD_RECEIVED_AT),
    WA_TEXT(WA_FIELD_RAW), WA_TEXT(WA_FIELD_ERROR), WA_TEXT(WA_FIELD_V)
};

#define WA_RESERVED_N  (sizeof(wa_reserved) / sizeof(wa_reserved[0]))

/*
 * Up to this many members, an object's repeated names are found by
 * comparing each name with those after it; past it, by sorting the names:
 * the work stays n log n in the body whatever its shape.
 */
#define WA_FLATTEN_SCAN  16

#define WA_DIGEST_HEX  32

#define WA_IS(v, t)       wa_json_is(v, WA_JSON_ ## t)
#define WA_IS_ARRAY(v)    WA_IS(v, ARRAY)
#define WA_IS_OBJECT(v)   WA_IS(v, OBJECT)
#define WA_IS_STRING(v)   WA_IS(v, STRING)
#define WA_IS_NULL(v)     WA_IS(v, NULL)


typedef struct {
    wa_batch_t       *batch;
    wa_text_t         field;          /* the change's field name */
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


/*
 * The hex of the SHA-256 of the pieces, truncated to WA_DIGEST_HEX; data
 * NULL when memory ran out.
 */
static wa_text_t
wa_digest_hex(wa_batch_t *b, const char **piece, const size_t *len, int n)
{
    int             i;
    char           *id;
    EVP_MD_CTX     *md;
    wa_text_t       t = { NULL, 0 };
    unsigned char   d[EVP_MAX_MD_SIZE];
    unsigned int    dlen;

    id = wa_alloc(b, WA_DIGEST_HEX + 1);
    if (id == NULL) {
        return t;
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        b->error = "out of memory";
        return t;
    }

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);

    for (i = 0; i < n; i++) {
        EVP_DigestUpdate(md, piece[i], len[i]);
    }

    EVP_DigestFinal_ex(md, d, &dlen);
    EVP_MD_CTX_free(md);

    wa_hex(d, WA_DIGEST_HEX / 2, id);
    id[WA_DIGEST_HEX] = '\0';

    t.data = id;
    t.len = WA_DIGEST_HEX;

    return t;
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
 * A digest that names an item without an id of its own: the field and its
 * terminating NUL, the WABA and the entry's time as the array [id,time],
 * and the item with its keys sorted, so that a redelivery with another key
 * order gets the same id.  The canonical JSON that follows the field never
 * holds a NUL byte, so a field with a NUL inside cannot stand for another.
 */
static wa_text_t
wa_digest_id(wa_builder_t *bd, const wa_json_t *item)
{
    const char  *piece[7];
    size_t       len[7];
    wa_text_t    none = { NULL, 0 };

    /* a field's text is NUL-terminated, as every string of the body */
    piece[0] = bd->field.data ? bd->field.data : "";
    len[0] = bd->field.len + 1;
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
        return none;
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
wa_add_text(wa_builder_t *bd, const char *name, size_t name_len,
    wa_text_t t)
{
    wa_add(bd, name, name_len, t.data, t.len);
}


/* the text of a string of the body; data NULL for any other value */
static wa_text_t
wa_string(const wa_json_t *v)
{
    wa_text_t  t = { NULL, 0 };

    if (WA_IS_STRING(v)) {
        t.data = v->str;
        t.len = v->len;
    }

    return t;
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
wa_begin(wa_builder_t *bd, wa_text_t kind, wa_text_t event_id,
    const wa_json_t *ts)
{
    const wa_json_t  *v;

    bd->n = 0;

    wa_add_text(bd, WA_FIELD_KIND, sizeof(WA_FIELD_KIND) - 1, kind);
    wa_add(bd, WA_FIELD_V, sizeof(WA_FIELD_V) - 1, WA_EVENTS_V,
           sizeof(WA_EVENTS_V) - 1);
    wa_add_text(bd, WA_FIELD_FIELD, sizeof(WA_FIELD_FIELD) - 1, bd->field);
    wa_add_text(bd, WA_FIELD_EVENT_ID, sizeof(WA_FIELD_EVENT_ID) - 1,
                event_id);

    if (bd->entry != NULL
        && wa_add_path(bd, WA_FIELD_WABA_ID, bd->entry, "id", NULL, NULL)
           != 0)
    {
        return -1;
    }

    v = wa_path(bd->value, "metadata", "phone_number_id", NULL);
    if (v == NULL) {
        v = wa_path(bd->value, "phone_number_id", NULL, NULL);
    }

    if (wa_add_json(bd, WA_FIELD_PHONE_NUMBER_ID,
                    sizeof(WA_FIELD_PHONE_NUMBER_ID) - 1, v) != 0)
    {
        return -1;
    }

    v = wa_path(bd->value, "metadata", "display_phone_number", NULL);
    if (v == NULL) {
        v = wa_path(bd->value, "display_phone_number", NULL, NULL);
    }

    if (wa_add_json(bd, WA_FIELD_DISPLAY_PHONE_NUMBER,
                    sizeof(WA_FIELD_DISPLAY_PHONE_NUMBER) - 1, v) != 0)
    {
        return -1;
    }

    if (ts == NULL && bd->entry != NULL) {
        ts = wa_json_get(bd->entry, "time");
    }

    if (wa_add_json(bd, WA_FIELD_TS, sizeof(WA_FIELD_TS) - 1, ts) != 0) {
        return -1;
    }

    wa_add(bd, WA_FIELD_RECEIVED_AT, sizeof(WA_FIELD_RECEIVED_AT) - 1,
           bd->received, bd->received_len);

    return 0;
}


/* closes the event: adds "raw" and appends it to the batch */
static int
wa_commit(wa_builder_t *bd, wa_stream_t stream, wa_text_t kind,
    wa_text_t event_id, const char *raw, size_t raw_len)
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
    bd->f[bd->n].name = WA_FIELD_RAW;
    bd->f[bd->n].name_len = sizeof(WA_FIELD_RAW) - 1;
    bd->f[bd->n].data = raw;
    bd->f[bd->n].len = raw_len;

    ev = &b->events[b->nevents];
    ev->stream = stream;
    ev->kind = kind.data;
    ev->kind_len = kind.len;
    ev->event_id = event_id.data;
    ev->event_id_len = event_id.len;
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
wa_commit_json(wa_builder_t *bd, wa_stream_t stream, wa_text_t kind,
    wa_text_t event_id, const wa_json_t *item)
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
    wa_text_t  id;

    wa_set_error(bd->batch, "%s", why);

    id = wa_digest_id(bd, item);
    if (id.data == NULL || wa_begin(bd, wa_text("unparsed"), id, NULL) != 0)
    {
        return -1;
    }

    wa_add(bd, WA_FIELD_ERROR, sizeof(WA_FIELD_ERROR) - 1, why, strlen(why));

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, wa_text("unparsed"), id,
                          item);
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


/* the member of obj named by a string of the body, or NULL */
static const wa_json_t *
wa_member(const wa_json_t *obj, wa_text_t name)
{
    return name.data ? wa_json_getn(obj, name.data, name.len) : NULL;
}


/* the readable text of a message, whatever its type */
static const wa_json_t *
wa_message_text(const wa_json_t *m)
{
    wa_text_t         type, itype;
    const wa_json_t  *obj, *v;

    type = wa_string(wa_json_get(m, "type"));
    if (type.data == NULL) {
        return NULL;
    }

    if (wa_text_is(type, "edit")) {
        return wa_message_text(wa_path(m, "edit", "message", NULL));
    }

    obj = wa_member(m, type);
    if (!WA_IS_OBJECT(obj)) {
        return NULL;
    }

    if (wa_text_is(type, "interactive")) {
        itype = wa_string(wa_json_get(obj, "type"));
        if (itype.data == NULL) {
            return NULL;
        }

        obj = wa_member(obj, itype);
        v = wa_json_get(obj, "title");
        return v ? v : wa_json_get(obj, "body");
    }

    if (wa_text_is(type, "reaction")) {
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


/* name: how many elements the array v has (nothing if it is not one) */
static int
wa_add_count(wa_builder_t *bd, const char *name, const wa_json_t *v)
{
    size_t       len;
    const char  *p;

    if (!WA_IS_ARRAY(v)) {
        return 0;
    }

    p = wa_decimal(bd->batch, (long long) v->len, &len);
    if (p == NULL) {
        return -1;
    }

    wa_add(bd, name, strlen(name), p, len);

    return 0;
}


/*
 * image, video, audio, document, sticker: what a service needs to fetch
 * the file (the worker's --media-dir does it for them) and to show it
 */
static int
wa_media_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "media_id", obj, "id", NULL, NULL) != 0
        || wa_add_path(bd, "mime_type", obj, "mime_type", NULL, NULL) != 0
        || wa_add_path(bd, "sha256", obj, "sha256", NULL, NULL) != 0
        || wa_add_path(bd, "caption", obj, "caption", NULL, NULL) != 0
        || wa_add_path(bd, "filename", obj, "filename", NULL, NULL) != 0
        || wa_add_path(bd, "voice", obj, "voice", NULL, NULL) != 0
        || wa_add_path(bd, "animated", obj, "animated", NULL, NULL) != 0)
    {
        return -1;
    }

    return 0;
}


static int
wa_location_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "latitude", obj, "latitude", NULL, NULL) != 0
        || wa_add_path(bd, "longitude", obj, "longitude", NULL, NULL) != 0
        || wa_add_path(bd, "name", obj, "name", NULL, NULL) != 0
        || wa_add_path(bd, "address", obj, "address", NULL, NULL) != 0)
    {
        return -1;
    }

    return 0;
}


static int
wa_order_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "catalog_id", obj, "catalog_id", NULL, NULL) != 0
        || wa_add_count(bd, "order_items_count",
                        wa_json_get(obj, "product_items")) != 0)
    {
        return -1;
    }

    return 0;
}


/* the fields that depend on a message's type */
static int
wa_message_type_fields(wa_builder_t *bd, wa_text_t type, const wa_json_t *obj)
{
    wa_text_t         itype;
    const wa_json_t  *v;

    if (wa_text_is(type, "reaction")) {
        return wa_add_path(bd, "reaction_to", obj, "message_id", NULL, NULL);
    }

    if (wa_text_is(type, "edit") || wa_text_is(type, "revoke")) {
        return wa_add_path(bd, "original_msg_id", obj, "original_message_id",
                           NULL, NULL);
    }

    if (wa_text_is(type, "button")) {
        return wa_add_path(bd, "payload", obj, "payload", NULL, NULL);
    }

    if (wa_text_is(type, "system")) {
        v = wa_json_get(obj, "wa_id");
        return wa_add_json(bd, "new_wa_id", 9,
                           v ? v : wa_json_get(obj, "new_wa_id"));
    }

    if (wa_text_is(type, "image") || wa_text_is(type, "video")
        || wa_text_is(type, "audio") || wa_text_is(type, "document")
        || wa_text_is(type, "sticker"))
    {
        return wa_media_fields(bd, obj);
    }

    if (wa_text_is(type, "location")) {
        return wa_location_fields(bd, obj);
    }

    if (wa_text_is(type, "contacts")) {
        return wa_add_count(bd, "contacts_count", obj);
    }

    if (wa_text_is(type, "order")) {
        return wa_order_fields(bd, obj);
    }

    itype = wa_string(wa_json_get(obj, "type"));

    if (wa_text_is(type, "interactive") && itype.data != NULL) {
        wa_add_text(bd, "interactive_type", 16, itype);

        return wa_add_json(bd, "reply_id", 8,
                           wa_json_get(wa_member(obj, itype), "id"));
    }

    return 0;
}


/* the fields of a message, an echo or a history message */
static int
wa_message_fields(wa_builder_t *bd, const wa_json_t *m)
{
    wa_text_t         type;
    const wa_json_t  *contact, *v;

    type = wa_string(wa_json_get(m, "type"));
    contact = wa_contact(bd->value, wa_json_get(m, "from"));

    v = wa_json_get(m, "from_user_id");
    if (v == NULL && contact != NULL
        && wa_same(wa_json_get(contact, "wa_id"),
                      wa_json_get(m, "from")))
    {
        v = wa_json_get(contact, "user_id");
    }

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

    if (type.data == NULL) {
        return 0;
    }

    return wa_message_type_fields(bd, type, wa_member(m, type));
}


static int
wa_message(wa_builder_t *bd, const wa_json_t *m, wa_text_t kind)
{
    wa_text_t  id;

    if (!WA_IS_OBJECT(m)) {
        return wa_unparsed(bd, m, "a message is not an object");
    }

    id = wa_string(wa_json_get(m, "id"));
    if (id.len == 0) {
        id = wa_digest_id(bd, m);
        if (id.data == NULL) {
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


/* a status's id: "<wamid>:<status>", or a digest without either */
static wa_text_t
wa_status_id(wa_builder_t *bd, const wa_json_t *s)
{
    char       *p;
    wa_text_t   wamid, status, id;

    wamid = wa_string(wa_json_get(s, "id"));
    status = wa_string(wa_json_get(s, "status"));

    if (wamid.data == NULL || status.data == NULL) {
        return wa_digest_id(bd, s);
    }

    id.len = wamid.len + 1 + status.len;
    p = wa_alloc(bd->batch, id.len + 1);
    id.data = p;

    if (p != NULL) {
        memcpy(p, wamid.data, wamid.len);
        p[wamid.len] = ':';
        memcpy(p + wamid.len + 1, status.data, status.len);
        p[id.len] = '\0';
    }

    return id;
}


static int
wa_status(wa_builder_t *bd, const wa_json_t *s)
{
    wa_text_t         id;
    const wa_json_t  *err;

    if (!WA_IS_OBJECT(s)) {
        return wa_unparsed(bd, s, "a status is not an object");
    }

    id = wa_status_id(bd, s);
    if (id.data == NULL) {
        return -1;
    }

    err = wa_first(wa_json_get(s, "errors"));

    if (wa_begin(bd, wa_text("status"), id, wa_json_get(s, "timestamp"))
           != 0
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

    return wa_commit_json(bd, WA_STREAM_STATUSES, wa_text("status"), id, s);
}


static int
wa_error(wa_builder_t *bd, const wa_json_t *e)
{
    wa_text_t  id;

    id = wa_digest_id(bd, e);

    if (id.data == NULL
        || wa_begin(bd, wa_text("error"), id, NULL) != 0
        || wa_add_path(bd, "error_code", e, "code", NULL, NULL) != 0
        || wa_add_path(bd, "error_title", e, "title", NULL, NULL) != 0
        || wa_add_path(bd, "error_message", e, "message", NULL, NULL) != 0
        || wa_add_path(bd, "error_details", e, "error_data", "details",
                       NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, wa_text("error"), id, e);
}


static int
wa_is_reserved(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < WA_RESERVED_N; i++) {
        if (wa_reserved[i].len == len
            && memcmp(wa_reserved[i].data, name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the field of that name among n fields, or NULL */
static const wa_field_t *
wa_field_find(const wa_field_t *f, size_t n, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (f[i].name_len == len && memcmp(f[i].name, name, len) == 0) {
            return &f[i];
        }
    }

    return NULL;
}


/* names in order of length and bytes, then of place in the body */
static int
wa_name_order(const void *a, const void *b)
{
    int               c;
    const wa_json_t  *x = *(const wa_json_t * const *) a;
    const wa_json_t  *y = *(const wa_json_t * const *) b;

    if (x->key_len != y->key_len) {
        return x->key_len < y->key_len ? -1 : 1;
    }

    c = memcmp(x->key, y->key, x->key_len);
    if (c != 0) {
        return c;
    }

    return (x > y) - (x < y);
}


static int
wa_same_name(const wa_json_t *a, const wa_json_t *b)
{
    return a->key_len == b->key_len
           && memcmp(a->key, b->key, a->key_len) == 0;
}


/* member i of obj is marked in *later, made at the first mark */
static int
wa_mark(wa_builder_t *bd, const wa_json_t *obj, unsigned char **later,
    size_t i)
{
    if (*later == NULL) {
        *later = wa_alloc(bd->batch, obj->len);
        if (*later == NULL) {
            return -1;
        }

        memset(*later, 0, obj->len);
    }

    (*later)[i] = 1;

    return 0;
}


/*
 * Marks, in *later, the members of obj whose name comes again further on:
 * a name given twice counts once, with its last value.  *later is NULL when
 * no name repeats.  A large object's names are sorted rather than hashed,
 * so that no choice of names makes the work worse than n log n.  Returns
 * -1 only when memory ran out.
 */
static int
wa_repeated_names(wa_builder_t *bd, const wa_json_t *obj,
    unsigned char **later)
{
    size_t            i, j;
    const wa_json_t **sorted;

    *later = NULL;

    if (obj->len < 2) {
        return 0;
    }

    if (obj->len <= WA_FLATTEN_SCAN) {
        for (i = 0; i < obj->len; i++) {
            for (j = i + 1; j < obj->len; j++) {
                if (wa_same_name(&obj->items[i], &obj->items[j])) {
                    if (wa_mark(bd, obj, later, i) != 0) {
                        return -1;
                    }

                    break;
                }
            }
        }

        return 0;
    }

    sorted = wa_alloc(bd->batch, obj->len * sizeof(wa_json_t *));
    if (sorted == NULL) {
        return -1;
    }

    for (i = 0; i < obj->len; i++) {
        sorted[i] = &obj->items[i];
    }

    qsort(sorted, obj->len, sizeof(wa_json_t *), wa_name_order);

    /* in a run of one name, every member but the last in the body */
    for (i = 0; i + 1 < obj->len; i++) {
        if (wa_same_name(sorted[i], sorted[i + 1])
            && wa_mark(bd, obj, later, sorted[i] - obj->items) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * The field name of a member: "outer_inner" one level down, and
 * value_<name> for a name the normalizer sets itself, at any level.
 * name->data is NULL when the event has a field of that name already: the
 * value stays in raw, and no event ever holds a name twice.
 */
static int
wa_flat_name(wa_builder_t *bd, wa_text_t outer, const wa_json_t *v,
    wa_text_t *name)
{
    char  *p;

    name->data = v->key;
    name->len = v->key_len;

    if (outer.data != NULL) {
        name->len = outer.len + 1 + v->key_len;

        p = wa_alloc(bd->batch, name->len + 1);
        if (p == NULL) {
            return -1;
        }

        memcpy(p, outer.data, outer.len);
        p[outer.len] = '_';
        memcpy(p + outer.len + 1, v->key, v->key_len);
        p[name->len] = '\0';
        name->data = p;
    }

    if (wa_is_reserved(name->data, name->len)) {
        p = wa_alloc(bd->batch, 6 + name->len + 1);
        if (p == NULL) {
            return -1;
        }

        memcpy(p, "value_", 6);
        memcpy(p + 6, name->data, name->len);
        p[6 + name->len] = '\0';
        name->data = p;
        name->len += 6;
    }

    /* the event being built has a field of that name already */
    if (wa_field_find(bd->f, bd->n, name->data, name->len) != NULL) {
        name->data = NULL;
    }

    return 0;
}


/* what the envelope says of every event: not flattened again */
static int
wa_envelope_member(const wa_json_t *v)
{
    wa_text_t  key;

    key.data = v->key;
    key.len = v->key_len;

    return wa_text_is(key, "metadata")
           || wa_text_is(key, "messaging_product")
           || wa_text_is(key, "display_phone_number")
           || wa_text_is(key, "phone_number_id");
}


/*
 * The scalars of an object as flat fields, and those of the objects inside
 * it as "outer_inner"; arrays stay in "raw" only.  Once the event holds
 * WA_EVENT_MAX_FIELDS fields the rest is not even looked at: it stays in
 * raw.
 */
static int
wa_flatten(wa_builder_t *bd, const wa_json_t *obj, wa_text_t outer)
{
    size_t            i;
    wa_text_t         name;
    unsigned char    *later;
    const wa_json_t  *v;

    if (wa_repeated_names(bd, obj, &later) != 0) {
        return -1;
    }

    for (i = 0; i < obj->len && bd->n < WA_EVENT_MAX_FIELDS; i++) {
        v = &obj->items[i];

        if (later != NULL && later[i]) {
            continue;
        }

        if (outer.data == NULL) {
            if (wa_envelope_member(v)) {
                continue;
            }

            if (WA_IS_OBJECT(v)) {
                name.data = v->key;
                name.len = v->key_len;

                if (wa_flatten(bd, v, name) != 0) {
                    return -1;
                }

                continue;
            }
        }

        /* an empty name is no field name: the value stays in raw */
        if (WA_IS_OBJECT(v) || WA_IS_ARRAY(v) || WA_IS_NULL(v)
            || v->key_len == 0)
        {
            continue;
        }

        if (wa_flat_name(bd, outer, v, &name) != 0) {
            return -1;
        }

        if (name.data != NULL
            && wa_add_json(bd, name.data, name.len, v) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* one event for a whole change of any field but the per-item ones */
static int
wa_change_event(wa_builder_t *bd)
{
    wa_text_t  id, top = { NULL, 0 };

    id = wa_digest_id(bd, bd->value);

    if (id.data == NULL
        || wa_begin(bd, bd->field, id,
                    wa_json_get(bd->entry, "time") ? NULL
                    : wa_json_get(bd->value, "timestamp")) != 0
        || wa_flatten(bd, bd->value, top) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, bd->value);
}


static int
wa_preference(wa_builder_t *bd, const wa_json_t *p)
{
    wa_text_t  id, top = { NULL, 0 };

    if (!WA_IS_OBJECT(p)) {
        return wa_unparsed(bd, p, "a user preference is not an object");
    }

    id = wa_digest_id(bd, p);

    if (id.data == NULL
        || wa_begin(bd, bd->field, id, wa_json_get(p, "timestamp")) != 0
        || wa_flatten(bd, p, top) != 0)
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
    return wa_message(bd, m, wa_text(WA_KIND_MESSAGE));
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
                if (wa_message(bd, m, wa_text("history")) != 0) {
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
    long              n, total;
    wa_text_t         none = { NULL, 0 };

    if (!WA_IS_OBJECT(change)) {
        bd->field = none;
        bd->value = NULL;
        return wa_unparsed(bd, change, "a change is not an object");
    }

    bd->field = wa_string(wa_json_get(change, "field"));
    bd->value = wa_json_get(change, "value");

    if (bd->field.data == NULL || !WA_IS_OBJECT(bd->value)) {
        bd->value = NULL;
        return wa_unparsed(bd, change,
                           "a change has no field name or no value object");
    }

    total = 0;

    if (wa_text_is(bd->field, "messages")) {
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

    } else if (wa_text_is(bd->field, "smb_message_echoes")) {
        total = wa_items(bd, "message_echoes", wa_echo);

    } else if (wa_text_is(bd->field, "history")) {
        total = wa_history(bd);

    } else if (wa_text_is(bd->field, "user_preferences")) {
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
    wa_text_t    id;
    const char  *why;

    id = wa_digest_hex(bd->batch, &body, &len, 1);

    if (id.data == NULL || wa_begin(bd, wa_text("unparsed"), id, NULL) != 0)
    {
        return -1;
    }

    why = bd->batch->error;
    wa_add(bd, WA_FIELD_ERROR, sizeof(WA_FIELD_ERROR) - 1, why, strlen(why));

    return wa_commit(bd, WA_STREAM_ACCOUNT, wa_text("unparsed"), id, body,
                     len);
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
    wa_text_t         object;
    const char       *why;
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

    object = wa_string(wa_json_get(root, "object"));
    entries = wa_json_get(root, "entry");

    if (!wa_text_is(object, "whatsapp_business_account")
        || !WA_IS_ARRAY(entries))
    {
        b->error = "not a WhatsApp envelope (object "
                   "\"whatsapp_business_account\" with an \"entry\" array)";
        return wa_body_unparsed(&bd, body, len);
    }

    wa_foreach(entries, i, entry) {
        bd.entry = entry;
        bd.field.data = NULL;
        bd.field.len = 0;
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
    return wa_event_fieldn(ev, name, strlen(name));
}


const wa_field_t *
wa_event_fieldn(const wa_event_t *ev, const char *name, size_t len)
{
    return wa_field_find(ev->fields, ev->nfields, name, len);
}


const wa_field_t *
wa_event_repeated_name(const wa_event_t *ev)
{
    size_t  i;

    for (i = 1; i < ev->nfields; i++) {
        if (wa_event_fieldn(ev, ev->fields[i].name, ev->fields[i].name_len)
            != &ev->fields[i])
        {
            return &ev->fields[i];
        }
    }

    return NULL;
}
