/*
 * wa-relay: simdjson's document as a C tree (see wa_json.h).
 *
 * The only C++ of the project.  No exception leaves this file: simdjson is
 * used through its error codes, and std::bad_alloc from the few containers
 * here is turned into WA_JSON_NOMEM.
 */

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <simdjson.h>

#include "wa_json.h"

using simdjson::dom::element;
using simdjson::dom::element_type;


/*
 * simdjson keeps its buffers sized for the largest body parsed so far; after
 * a body larger than this, the parser is started afresh so that one large
 * body does not hold its memory for good.
 */
#define WA_JSON_KEEP  (1024 * 1024)


struct wa_json_parser_s {
    simdjson::dom::parser  parser;
    std::vector<element>   handles;     /* wa_json_t.handle indexes it */

    /*
     * what simdjson::to_string() builds anew for every value, kept: its
     * buffer stays grown from one dump to the next instead of growing
     * byte by byte into a fresh std::string (a third of a dump's time)
     */
    simdjson::internal::string_builder<>  dump;
};


typedef struct {
    wa_json_parser_t  *p;
    wa_json_alloc_pt   alloc;
    void              *data;
} wa_json_build_t;


static int wa_json_node(wa_json_build_t *b, element e, wa_json_t *n);


/* an item of an array, or a member of an object with its name */
static int
wa_json_item(wa_json_build_t *b, element v, wa_json_t *n)
{
    return wa_json_node(b, v, n);
}


static int
wa_json_item(wa_json_build_t *b, simdjson::dom::key_value_pair kv,
    wa_json_t *n)
{
    if (wa_json_node(b, kv.value, n) != WA_JSON_OK) {
        return WA_JSON_NOMEM;
    }

    /* simdjson's strings end with a NUL */
    n->key = kv.key.data();
    n->key_len = kv.key.size();

    return WA_JSON_OK;
}


/* the items of an array or an object (C is simdjson's dom::array/object) */
template <class C>
static int
wa_json_items(wa_json_build_t *b, C c, wa_json_t *n)
{
    size_t      count;
    wa_json_t  *item;

    /* the tape knows the count, up to 0xFFFFFF: past that, count them */
    count = c.size();

    if (count >= 0xFFFFFF) {
        count = 0;
        for (auto it = c.begin(); it != c.end(); ++it) {
            count++;
        }
    }

    n->len = count;

    if (count == 0) {
        return WA_JSON_OK;
    }

    item = static_cast<wa_json_t *>(b->alloc(b->data,
                                             count * sizeof(wa_json_t)));
    if (item == NULL) {
        return WA_JSON_NOMEM;
    }

    n->items = item;

    for (auto v : c) {
        if (wa_json_item(b, v, item++) != WA_JSON_OK) {
            return WA_JSON_NOMEM;
        }
    }

    return WA_JSON_OK;
}


static int
wa_json_node(wa_json_build_t *b, element e, wa_json_t *n)
{
    std::string_view  s;

    std::memset(n, 0, sizeof(wa_json_t));

    n->handle = static_cast<uint32_t>(b->p->handles.size());
    b->p->handles.push_back(e);

    switch (e.type()) {

    case element_type::OBJECT:
        n->type = WA_JSON_OBJECT;
        return wa_json_items(b, simdjson::dom::object(e), n);

    case element_type::ARRAY:
        n->type = WA_JSON_ARRAY;
        return wa_json_items(b, simdjson::dom::array(e), n);

    case element_type::STRING:
        s = e.get_string().value_unsafe();
        n->type = WA_JSON_STRING;
        n->str = s.data();
        n->len = s.size();
        break;

    case element_type::INT64:
        n->type = WA_JSON_INTEGER;
        n->integer = e.get_int64().value_unsafe();
        break;

    case element_type::UINT64:
    case element_type::DOUBLE:
        n->type = WA_JSON_NUMBER;
        break;

    case element_type::BOOL:
        n->type = e.get_bool().value_unsafe() ? WA_JSON_TRUE : WA_JSON_FALSE;
        break;

    case element_type::NULL_VALUE:
        n->type = WA_JSON_NULL;
        break;
    }

    return WA_JSON_OK;
}


extern "C" wa_json_parser_t *
wa_json_parser_create(void)
{
    return new (std::nothrow) wa_json_parser_t;
}


extern "C" void
wa_json_parser_destroy(wa_json_parser_t *p)
{
    delete p;
}


extern "C" int
wa_json_parse(wa_json_parser_t *p, const char *buf, size_t len,
    wa_json_alloc_pt alloc, void *alloc_data, wa_json_t **root,
    const char **error)
{
    element          e;
    wa_json_t       *n;
    wa_json_build_t  b;

    try {
        if (p->parser.capacity() > WA_JSON_KEEP && len <= WA_JSON_KEEP) {
            p->parser = simdjson::dom::parser();
            p->handles = std::vector<element>();
            p->dump = simdjson::internal::string_builder<>();
        }

        p->handles.clear();

        /* the parser copies buf into its own padded buffer */
        simdjson::error_code  rc = p->parser.parse(buf, len).get(e);

        if (rc == simdjson::MEMALLOC) {
            return WA_JSON_NOMEM;
        }

        if (rc != simdjson::SUCCESS) {
            *error = simdjson::error_message(rc);
            return WA_JSON_INVALID;
        }

        n = static_cast<wa_json_t *>(alloc(alloc_data, sizeof(wa_json_t)));
        if (n == NULL) {
            return WA_JSON_NOMEM;
        }

        b.p = p;
        b.alloc = alloc;
        b.data = alloc_data;

        if (wa_json_node(&b, e, n) != WA_JSON_OK) {
            return WA_JSON_NOMEM;
        }

    } catch (const std::bad_alloc &) {
        return WA_JSON_NOMEM;
    }

    *root = n;

    return WA_JSON_OK;
}


extern "C" const char *
wa_json_dump(wa_json_parser_t *p, const wa_json_t *v, wa_json_alloc_pt alloc,
    void *alloc_data, size_t *len)
{
    char              *out;
    std::string_view   s;

    try {
        p->dump.clear();
        p->dump.append(p->handles[v->handle]);
        s = p->dump.str();

        out = static_cast<char *>(alloc(alloc_data, s.size() ? s.size() : 1));
        if (out == NULL) {
            return NULL;
        }

        std::memcpy(out, s.data(), s.size());
        *len = s.size();

        return out;

    } catch (const std::bad_alloc &) {
        return NULL;
    }
}


extern "C" const wa_json_t *
wa_json_get(const wa_json_t *obj, const char *key)
{
    return wa_json_getn(obj, key, std::strlen(key));
}


extern "C" const wa_json_t *
wa_json_getn(const wa_json_t *obj, const char *key, size_t len)
{
    const wa_json_t  *v;

    if (obj == NULL || obj->type != WA_JSON_OBJECT) {
        return NULL;
    }

    /* from the end: a repeated name means its last value, as in jansson */
    for (v = obj->items + obj->len; v != obj->items; ) {
        v--;

        /* the first byte first: most names differ there, cheaper than
           a call to memcmp() */
        if (v->key_len == len && (len == 0 || v->key[0] == key[0])
            && std::memcmp(v->key, key, len) == 0)
        {
            return v;
        }
    }

    return NULL;
}

