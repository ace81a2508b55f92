/*
 * wa-relayd: the state shared by the consumer loop's parts.
 */

#ifndef WA_WORKER_H
#define WA_WORKER_H

#include <hiredis/hiredis.h>

#include "options.h"

#define NSTREAMS  3

typedef struct {
    long long   applied;
    long long   duplicates;
    long long   skipped;
    long long   dead;
    long long   reclaimed;
    long long   errors;
    long long   trimmed;
    long long   capped;
} counters_t;

typedef struct {
    const options_t  *o;
    redisContext     *c;
    char              stream[NSTREAMS][256];
    char              dead[256];
    counters_t        n;
} worker_t;

extern const char *stream_names[NSTREAMS];

/* consume.c: 0, or -1 when the connection is gone */
int consume_groups(worker_t *w);
int consume_read(worker_t *w);
int consume_reclaim(worker_t *w);

/* trim.c */
int trim_streams(worker_t *w);

long long now_ms(void);

#endif /* WA_WORKER_H */
