/*
 * wa-relay: a change of any field but the per-item ones, flattened into
 * one event: every member a field, named by its path (wa_build.h).
 */

#include <stdlib.h>
#include <string.h>

#include "wa_build.h"


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
const wa_field_t *
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
int
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
int
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
