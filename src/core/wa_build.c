/*
 * wa-relay: the normalizer's event builder: an event's fields added one by
 * one, the values the body gives as they are or as compact JSON, the ids
 * made of a digest when Meta gives none, and the event closed with its
 * "raw" and appended to the batch (wa_build.h).
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wa_build.h"


void *
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
const char *
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
wa_text_t
wa_digest_hex(wa_batch_t *b, const char **piece, const size_t *len,
    int n)
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
wa_text_t
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


void
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


void
wa_add_text(wa_builder_t *bd, const char *name, size_t name_len,
    wa_text_t t)
{
    wa_add(bd, name, name_len, t.data, t.len);
}


/* the text of a string of the body; data NULL for any other value */
wa_text_t
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
int
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
const wa_json_t *
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


int
wa_add_path(wa_builder_t *bd, const char *name, const wa_json_t *j,
    const char *k1, const char *k2, const char *k3)
{
    return wa_add_json(bd, name, strlen(name), wa_path(j, k1, k2, k3));
}


const wa_json_t *
wa_first(const wa_json_t *array)
{
    return (WA_IS_ARRAY(array) && array->len) ? &array->items[0] : NULL;
}


/* the fields every event starts with */
int
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
int
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


int
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
int
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
int
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


/* the member of obj named by a string of the body, or NULL */
const wa_json_t *
wa_member(const wa_json_t *obj, wa_text_t name)
{
    return name.data ? wa_json_getn(obj, name.data, name.len) : NULL;
}


/* name: how many elements the array v has (nothing if it is not one) */
int
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
