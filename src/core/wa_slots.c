/*
 * wa-relay: CLUSTER SLOTS, read (wa_slots.h).
 */

#include <stdlib.h>

#include "wa_partition.h"
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
