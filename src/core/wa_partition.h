/*
 * wa-relay: partitions of the key layout (docs/redis.md, "Partitions").
 *
 * With N partitions every key of partition p lives under
 * "<prefix>:{<tag>}", the tag being the same in the module, the worker and
 * the readers downstream: each call of a function then stays in one hash
 * slot of a Redis Cluster.  An event goes to the partition of its business
 * number (so a number's events keep their order), or of its WABA when it
 * has no number.  With one partition the layout is the single-instance
 * one: "<prefix>:messages", no tag.
 */

#ifndef WA_PARTITION_H
#define WA_PARTITION_H

#include <stddef.h>

#define WA_SLOTS           16384
#define WA_PARTITIONS_MAX  1024
#define WA_TAG_LEN         16

/* the hash slot Redis Cluster gives a key (its hash tag when it has one) */
unsigned wa_key_slot(const char *key, size_t len);

/*
 * The tag of partition p of n, NUL-terminated in tag[WA_TAG_LEN]: "p.k",
 * with the first k whose slot falls in the p-th n-th of the slots, so that
 * partitions spread over the primaries as evenly as the slots do.
 */
size_t wa_partition_tag(unsigned p, unsigned n, char *tag);

/* the partition of a business number or WABA id */
unsigned wa_partition_of(const char *id, size_t len, unsigned n);

/* "<prefix>:{<tag>}" of partition p into buf; its length, 0 if too long */
size_t wa_partition_prefix(const char *prefix, size_t len, unsigned p,
    unsigned n, char *buf, size_t size);

#endif /* WA_PARTITION_H */
