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

/* one FCALL wa_apply_1, formatted */
typedef struct {
    int      s;                     /* the stream */
    size_t   n;                     /* its entries */
    char    *cmd;
    size_t   len;
} call_t;

/* what one XREADGROUP gave: a call per stream */
typedef struct {
    call_t   call[NSTREAMS];
    int      ncalls;
} batch_t;

typedef struct {
    const options_t  *o;
    redisContext     *c;
    char              stream[NSTREAMS][256];
    char              dead[256];
    char             *apply_options;   /* JSON: the automatic replies */
    counters_t        n;
    batch_t           held;         /* read, not yet applied */
} worker_t;

extern const char *stream_names[NSTREAMS];

/* consume.c: 0, or -1 when the connection is gone */
int consume_groups(worker_t *w);
int consume_read(worker_t *w);
int consume_own_pending(worker_t *w);
int consume_drain(worker_t *w);
void consume_forget(worker_t *w);
int consume_reclaim(worker_t *w);

/* replies.c: the automatic replies as wa_apply_1's options */
char *replies_options(const options_t *o);

/* sender.c: the outbox sender, a thread of its own */
int sender_start(const options_t *o);
void sender_stop(void);

/* trim.c */
int trim_streams(worker_t *w);
int trim_one(worker_t *w, const char *key, const char *name);

long long now_ms(void);             /* monotonic, for intervals */
long long now_wall_ms(void);        /* the epoch, for what Redis keeps */

#endif /* WA_WORKER_H */
