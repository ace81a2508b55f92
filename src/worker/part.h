/*
 * wa-relayd: a partition of the key layout, as the parts of the process
 * that work on one see it: its index, the prefix of its keys and the hash
 * slot they share.  Without partitions the process has one, whose prefix
 * is --prefix (wa_partition.h has the layout).
 */

#ifndef WA_PART_H
#define WA_PART_H

#include "options.h"

/* --prefix and a partition's tag: longer prefixes are refused (options.c) */
#define WA_PREFIX_MAX   200
#define WA_PREFIX_ROOT  (WA_PREFIX_MAX - 40)

typedef struct {
    unsigned        index;
    unsigned        count;          /* the process's partitions */
    int             slot;           /* its keys' slot; -1: any node */
    char            prefix[WA_PREFIX_MAX];  /* "<prefix>:{<tag>}" */
} wa_part_t;

/* partition p of those --partitions and --cluster make: 0, or -1 */
int wa_part_init(wa_part_t *part, const wa_options_t *o, unsigned p);

/* the partitions of the process, an array of wa_part_count(o) */
long wa_part_count(const wa_options_t *o);

#endif /* WA_PART_H */
