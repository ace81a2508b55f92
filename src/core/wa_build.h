/*
 * wa-relay: the normalizer's parts, for its files only.
 *
 *   wa_normalize.c  Meta's shapes: messages, statuses, errors, echoes,
 *                   history, preferences, and the entry point
 *   wa_build.c      an event built field by field, closed into the batch
 *   wa_flatten.c    any other change, flattened into one event
 */

#ifndef WA_BUILD_H
#define WA_BUILD_H

#include <string.h>

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

#define WA_DIGEST_HEX  32

#define WA_IS(v, t)       wa_json_is(v, WA_JSON_ ## t)
#define WA_IS_ARRAY(v)    WA_IS(v, ARRAY)
#define WA_IS_OBJECT(v)   WA_IS(v, OBJECT)
#define WA_IS_STRING(v)   WA_IS(v, STRING)
#define WA_IS_NULL(v)     WA_IS(v, NULL)

/* the items of an array (none for anything else) */
#define wa_foreach(array, i, item)                                          \
    for (i = 0; WA_IS_ARRAY(array) && i < (array)->len                      \
                && ((item) = &(array)->items[i]); i++)


/* the event being built, and the change it comes from */
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


/* wa_build.c: memory, numbers and ids, from the batch's allocator */
void *wa_alloc(wa_batch_t *b, size_t size);
const char *wa_decimal(wa_batch_t *b, long long v, size_t *len);
wa_text_t wa_digest_hex(wa_batch_t *b, const char **piece, const size_t *len,
    int n);
wa_text_t wa_digest_id(wa_builder_t *bd, const wa_json_t *item);

/* wa_build.c: what the body holds */
wa_text_t wa_string(const wa_json_t *v);
const wa_json_t *wa_path(const wa_json_t *j, const char *k1,
    const char *k2, const char *k3);
const wa_json_t *wa_first(const wa_json_t *array);
const wa_json_t *wa_member(const wa_json_t *obj, wa_text_t name);
int wa_same(const wa_json_t *a, const wa_json_t *b);

/* wa_build.c: an event's fields; -1 when memory ran out */
int wa_begin(wa_builder_t *bd, wa_text_t kind, wa_text_t event_id,
    const wa_json_t *ts);
void wa_add(wa_builder_t *bd, const char *name, size_t name_len,
    const char *data, size_t len);
void wa_add_text(wa_builder_t *bd, const char *name, size_t name_len,
    wa_text_t t);
int wa_add_json(wa_builder_t *bd, const char *name, size_t name_len,
    const wa_json_t *v);
int wa_add_path(wa_builder_t *bd, const char *name, const wa_json_t *j,
    const char *k1, const char *k2, const char *k3);
int wa_add_count(wa_builder_t *bd, const char *name, const wa_json_t *v);

/* wa_build.c: the event closed with its raw piece, into the batch */
int wa_commit(wa_builder_t *bd, wa_stream_t stream, wa_text_t kind,
    wa_text_t event_id, const char *raw, size_t raw_len);
int wa_commit_json(wa_builder_t *bd, wa_stream_t stream, wa_text_t kind,
    wa_text_t event_id, const wa_json_t *item);
int wa_unparsed(wa_builder_t *bd, const wa_json_t *item, const char *why);

/* wa_flatten.c */
int wa_flatten(wa_builder_t *bd, const wa_json_t *obj, wa_text_t outer);
int wa_change_event(wa_builder_t *bd);
const wa_field_t *wa_field_find(const wa_field_t *f, size_t n,
    const char *name, size_t len);

#endif /* WA_BUILD_H */
