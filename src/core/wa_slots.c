/*
 * wa-relay: CLUSTER SHARDS and CLUSTER SLOTS, read (wa_slots.h).
 */

#include <stdlib.h>
#include <string.h>

#include "wa_partition.h"
#include "wa_reply.h"
#include "wa_slots.h"


/* an integer reply, or a decimal string one, up to max: 0, or -1 */
static int
wa_slots_number(const redisReply *r, long long max, unsigned *v)
{
    size_t     i;
    long long  n;

    if (r->type == REDIS_REPLY_INTEGER) {
        n = r->integer;

    } else if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < 12) {
        for (i = 0, n = 0; i < r->len; i++) {
            if (r->str[i] < '0' || r->str[i] > '9') {
                return -1;
            }

            n = n * 10 + (r->str[i] - '0');
        }

    } else {
        return -1;
    }

    if (n < 0 || n > max) {
        return -1;
    }

    *v = (unsigned) n;

    return 0;
}


static int
wa_slots_is(const redisReply *r, const char *value)
{
    return r && r->type == REDIS_REPLY_STRING && r->len == strlen(value)
           && memcmp(r->str, value, r->len) == 0;
}


/* a shard's node that is its primary and online, or NULL */
static const redisReply *
wa_shards_primary(const redisReply *nodes)
{
    size_t             i;
    const redisReply  *node, *health;

    for (i = 0; nodes->type == REDIS_REPLY_ARRAY && i < nodes->elements;
         i++)
    {
        node = nodes->element[i];

        if (node->type != REDIS_REPLY_ARRAY
            || !wa_slots_is(wa_reply_field(node, "role"), "master"))
        {
            continue;
        }

        health = wa_reply_field(node, "health");

        if (health == NULL || wa_slots_is(health, "online")) {
            return node;
        }
    }

    return NULL;
}


/* one shard: each of its ranges to its primary; -1 to stop */
static int
wa_shards_one(const redisReply *shard, wa_slots_pt cb, void *data, int *n)
{
    size_t             i;
    unsigned           start, end, port;
    const redisReply  *slots, *node, *ip, *p;

    slots = wa_reply_field(shard, "slots");
    node = wa_reply_field(shard, "nodes");

    if (slots == NULL || slots->type != REDIS_REPLY_ARRAY || node == NULL
        || (node = wa_shards_primary(node)) == NULL)
    {
        return 0;
    }

    ip = wa_reply_field(node, "ip");
    if (ip == NULL || ip->type != REDIS_REPLY_STRING || ip->len == 0) {
        ip = wa_reply_field(node, "endpoint");
    }

    p = wa_reply_field(node, "port");

    if (ip == NULL || ip->type != REDIS_REPLY_STRING || ip->len == 0
        || p == NULL || wa_slots_number(p, 65535, &port) != 0 || port == 0)
    {
        return 0;
    }

    for (i = 0; i + 1 < slots->elements; i += 2) {
        if (wa_slots_number(slots->element[i], WA_SLOTS - 1, &start) != 0
            || wa_slots_number(slots->element[i + 1], WA_SLOTS - 1, &end)
               != 0
            || end < start)
        {
            continue;
        }

        (*n)++;

        if (cb(start, end, ip->str, ip->len, port, data) != 0) {
            return -1;
        }
    }

    return 0;
}


/* a SHARDS reply: each shard an array of names and values */
static int
wa_shards_each(const redisReply *r, wa_slots_pt cb, void *data)
{
    int     n;
    size_t  i;

    for (i = 0, n = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_ARRAY
            && wa_shards_one(r->element[i], cb, data, &n) != 0)
        {
            break;
        }
    }

    return n;
}


int
wa_slots_each(const redisReply *r, wa_slots_pt cb, void *data)
{
    int                n;
    size_t             i;
    unsigned           start, end, port;
    const redisReply  *range, *node;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    /* SHARDS: a shard starts with a name; SLOTS: a range with a number */
    if (r->elements > 0 && r->element[0]->type == REDIS_REPLY_ARRAY
        && r->element[0]->elements > 0
        && wa_reply_field(r->element[0], "slots") != NULL)
    {
        return wa_shards_each(r, cb, data);
    }

    for (i = 0, n = 0; i < r->elements; i++) {
        range = r->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[2]->elements < 2)
        {
            continue;
        }

        node = range->element[2];

        if (wa_slots_number(range->element[0], WA_SLOTS - 1, &start) != 0
            || wa_slots_number(range->element[1], WA_SLOTS - 1, &end) != 0
            || end < start
            || node->element[0]->type != REDIS_REPLY_STRING
            || node->element[0]->len == 0
            || wa_slots_number(node->element[1], 65535, &port) != 0
            || port == 0)
        {
            continue;
        }

        n++;

        if (cb(start, end, node->element[0]->str, node->element[0]->len,
               port, data)
            != 0)
        {
            break;
        }
    }

    return n;
}
