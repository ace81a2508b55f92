/*
 * wa-relay: a webhook body parsed by simdjson, as a plain C tree.
 *
 * simdjson parses and validates the whole body (grammar and UTF-8) in one
 * pass, several times faster than a tree-building parser; wa_json.cpp turns
 * its document into wa_json_t nodes so that the normalizer stays C.  Every
 * string a node points to (keys and values, unescaped, NUL-terminated) lives
 * in the parser and stays valid until that parser's next parse.  Nodes come
 * from the caller's allocator.
 */

#ifndef WA_JSON_H
#define WA_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


typedef enum {
    WA_JSON_NULL = 0,
    WA_JSON_TRUE,
    WA_JSON_FALSE,
    WA_JSON_INTEGER,         /* fits int64_t: in .integer */
    WA_JSON_NUMBER,          /* any other number: its text from wa_json_dump */
    WA_JSON_STRING,
    WA_JSON_ARRAY,
    WA_JSON_OBJECT
} wa_json_type_t;


typedef struct wa_json_s  wa_json_t;

struct wa_json_s {
    wa_json_type_t   type;
    uint32_t         handle;     /* the parser's own value, for dumps */
    const char      *key;        /* a member of an object: its name */
    size_t           key_len;
    const char      *str;        /* STRING */
    size_t           len;        /* STRING: bytes; ARRAY, OBJECT: items */
    wa_json_t       *items;      /* ARRAY, OBJECT: in the body's order */
    int64_t          integer;    /* INTEGER */
};


typedef struct wa_json_parser_s  wa_json_parser_t;

typedef void *(*wa_json_alloc_pt)(void *data, size_t size);


#define WA_JSON_OK       0
#define WA_JSON_INVALID  -1
#define WA_JSON_NOMEM    -2


/* one per thread, reused for every body: its buffers stay warm */
wa_json_parser_t *wa_json_parser_create(void);
void wa_json_parser_destroy(wa_json_parser_t *p);

/*
 * Parses buf (never NULL, even when len is 0: it is copied).  Returns
 * WA_JSON_OK with *root set, WA_JSON_INVALID with *error set to the
 * parser's reason (a static string), or WA_JSON_NOMEM.
 */
int wa_json_parse(wa_json_parser_t *p, const char *buf, size_t len,
    wa_json_alloc_pt alloc, void *alloc_data, wa_json_t **root,
    const char **error);

/*
 * v as compact JSON (UTF-8, minimal escapes), in memory from alloc, not
 * NUL-terminated; its length in *len.  NULL when out of memory.
 */
const char *wa_json_dump(wa_json_parser_t *p, const wa_json_t *v,
    wa_json_alloc_pt alloc, void *alloc_data, size_t *len);


/*
 * The member of an object named key (the last one, if repeated), or NULL.
 * wa_json_getn takes a name with its length: one from the body may hold a
 * NUL.
 */
const wa_json_t *wa_json_get(const wa_json_t *obj, const char *key);
const wa_json_t *wa_json_getn(const wa_json_t *obj, const char *key,
    size_t len);

#define wa_json_is(v, t)  ((v) != NULL && (v)->type == (t))

#ifdef __cplusplus
}
#endif

#endif /* WA_JSON_H */
