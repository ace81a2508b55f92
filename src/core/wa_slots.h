/*
 * wa-relay: a Redis Cluster's slot map, read the same way by the module
 * (its map of every slot) and the worker (the primary of its partition's
 * slot), from either reply:
 *
 *   CLUSTER SHARDS (Redis 7):  [["slots", [start, end, ...], "nodes",
 *                               [["id", id, "port", port, "ip", ip, ...,
 *                               "role", "master", ..., "health",
 *                               "online"], ...]], ...]
 *   CLUSTER SLOTS (older):     [[start, end, [host, port, id, ...],
 *                               replica...], ...]
 *
 * SHARDS is asked first (WA_SLOTS_ASK); where Redis does not know it, an
 * error of kind WA_REPLY_UNKNOWN (wa_reply.h), SLOTS.  Ranges that make no
 * sense, and shards without a primary that is online, are skipped, not
 * fatal: a reply is taken for what it says of the rest.
 */

#ifndef WA_SLOTS_H
#define WA_SLOTS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* a range and its primary; 0 goes on to the next range, else stops */
typedef int (*wa_slots_pt)(unsigned start, unsigned end, const char *host,
    size_t host_len, unsigned port, void *data);

#define WA_SLOTS_ASK       "SHARDS"
#define WA_SLOTS_FALLBACK  "SLOTS"

/*
 * Each well-formed range of the reply, SHARDS or SLOTS, given to cb (slots
 * within the 16384, a host, a port from 1 to 65535; numbers as integers
 * or decimal strings): how many were, or -1 when the reply is not an array
 */
int wa_slots_each(const redisReply *r, wa_slots_pt cb, void *data);

#endif /* WA_SLOTS_H */
