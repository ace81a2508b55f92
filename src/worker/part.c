/*
 * wa-relayd: a partition of the key layout (part.h).
 */

#include <string.h>

#include "part.h"
#include "wa_partition.h"


long
wa_part_count(const wa_options_t *o)
{
    return o->partitions > 1 ? o->partitions : 1;
}


int
wa_part_init(wa_part_t *part, const wa_options_t *o, unsigned p)
{
    memset(part, 0, sizeof(wa_part_t));

    part->index = p;
    part->count = (unsigned) wa_part_count(o);

    if (wa_partition_prefix(o->prefix, strlen(o->prefix), p, part->count,
                            part->prefix, sizeof(part->prefix))
        == 0)
    {
        return -1;
    }

    /* every key of a partition is in its prefix's slot */
    part->slot = part->count > 1
                 ? (int) wa_key_slot(part->prefix, strlen(part->prefix))
                 : -1;

    return 0;
}
