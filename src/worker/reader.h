/*
 * wa-relayd: reading streams in a consumer group, for the consumer loop
 * and the sender alike: the groups made (and made again when Redis lost
 * them), entries read, entries a dead consumer left taken over once idle,
 * and an entry delivered more than --max-deliveries times moved to
 * <prefix>:dead instead of being tried again forever.
 */

#ifndef WA_READER_H
#define WA_READER_H

#include <hiredis/hiredis.h>

#include "link.h"
#include "options.h"

#define WA_READER_MAX  4

typedef struct {
    long long   reclaimed;      /* taken over from an idle consumer */
    long long   dead;           /* moved to the dead-letter stream */
    long long   trimmed;        /* trimmed: every group had them */
    long long   capped;         /* trimmed by --max-len: some group had not */
} wa_reader_counters_t;

typedef struct {
    wa_link_t             *link;
    const wa_options_t    *o;
    const char            *group;       /* --group, or a group of its own */
    const char            *group_from;  /* where a new group starts: "0" */
    const char            *prefix;      /* its partition's */
    int                    nstreams;
    const char            *stream[WA_READER_MAX];
    const char            *dead;
    wa_reader_counters_t   n;
} wa_reader_t;

/* entries of stream s to handle: 0, or -1 when the link is gone */
typedef int (*wa_reader_take_pt)(void *data, int s, redisReply **entries,
    size_t n);

void wa_reader_init(wa_reader_t *rd, wa_link_t *link, const char *prefix,
    const char *dead);
void wa_reader_group(wa_reader_t *rd, const char *group, const char *from);
void wa_reader_add(wa_reader_t *rd, const char *stream);

/* XGROUP CREATE ... MKSTREAM on every stream (an existing group is fine) */
int wa_reader_groups(wa_reader_t *rd);

/*
 * XREADGROUP on every stream from "from" (">": new entries, "0": this
 * consumer's own pending ones), queued, not waited for.
 */
int wa_reader_append(wa_reader_t *rd, const char *from, long count,
    long block_ms);

/*
 * The reply of an XREADGROUP: an array, or *r NULL when there is nothing
 * (an error is logged).  1 when Redis lost the group: the caller makes the
 * groups again (wa_reader_groups) once what it sent meanwhile is answered.
 */
int wa_reader_check(wa_reader_t *rd, redisReply **r);

/* append, the reply, and the groups made again if lost: -1 link gone */
int wa_reader_read(wa_reader_t *rd, const char *from, long count,
    long block_ms, redisReply **r);

/* the entries of stream s in an XREADGROUP reply, or NULL */
redisReply *wa_reader_entries(wa_reader_t *rd, redisReply *r, int s);

/*
 * Entries of stream s idle over --claim-idle-ms, taken over (XAUTOCLAIM,
 * up to rounds of count): those delivered too often go to the dead-letter
 * stream, the others to take.  -1 when the link is gone.
 */
int wa_reader_claim(wa_reader_t *rd, int s, long count, int rounds,
    wa_reader_take_pt take, void *data);

/* a well-formed entry: [id, [field, value, ...]] of strings */
int wa_reader_valid(const redisReply *e);

/*
 * trim.c: stream s trimmed to what every group has acknowledged, and to
 * --max-len (counted under label in <prefix>:worker:capped); -1: link gone
 */
int wa_trim_stream(wa_reader_t *rd, int s, const char *label);

#endif /* WA_READER_H */
