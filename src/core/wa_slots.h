/*
 * wa-relay: a Redis Cluster's CLUSTER SLOTS reply, read the same way by
 * the module (its map of every slot) and the worker (the primary of its
 * partition's slot): [[start, end, [host, port, id, ...], replica...], ...].
 * Ranges that make no sense are skipped, not fatal: a reply is taken for
 * what it says of the rest.
 */

#ifndef WA_SLOTS_H
#define WA_SLOTS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* a range and its primary; 0 goes on to the next range, else stops */
typedef int (*wa_slots_pt)(unsigned start, unsigned end, const char *host,
    size_t host_len, unsigned port, void *data);

/*
 * Each well-formed range of the reply given to cb (slots within the
 * 16384, a host, a port from 1 to 65535; numbers as integers or decimal
 * strings): how many were, or -1 when the reply is not an array
 */
int wa_slots_each(const redisReply *r, wa_slots_pt cb, void *data);

#endif /* WA_SLOTS_H */
