/*
 * wa-relayd: the sender's parts, each calling only those below it:
 *
 *   sender.c           the service: the outbox read, the ready queue
 *   sender_govern.c    what may go now (the governor, the pace)
 *   sender_job.c       a job's request, and the verdict on its answer
 *   sender_reach.c     the portfolio's messaging limit, held and let go
 *   sender_deferred.c  the deferred set: in, due, out
 *   sender_record.c    what is recorded: one MULTI, the counters
 */

#ifndef WA_SENDER_H
#define WA_SENDER_H

#include <stdatomic.h>

#include <curl/curl.h>
#include <jansson.h>

#include "answer.h"
#include "http.h"
#include "link.h"
#include "pace.h"
#include "part.h"
#include "portfolio.h"
#include "reader.h"
#include "service.h"
#include "wa_graph.h"
#include "wa_outbox.h"
#include "wa_streams.h"

#define WA_LEASE_MS       60000        /* a claimed deferred entry's lease */
#define WA_IDEM_TTL       (30 * 86400) /* Meta keeps a message 30 days */
#define WA_MAX_FIELDS     64


typedef struct wa_job_s  wa_job_t;

struct wa_job_s {
    wa_job_t            *next;
    char                 id[64];        /* outbox entry id */
    json_t              *fields;        /* the entry's fields */
    wa_outbox_t          out;
    long                 attempts;
    int                  pending;       /* still pending in the group */
    long long            ready_ms;
    long long            started_ms;
    CURL                *easy;
    struct curl_slist   *headers;
    char                *request;
    wa_answer_t          response;

    /* the portfolio's messaging limit (sender_reach.c) */
    char                 portfolio[WA_PORTFOLIO_ID_MAX];
    int                  reach;         /* 0: nothing; 1: this entry holds
                                           its user; 2: reached already */
};


/* what became of the outbox entries (docs/outbox.md) */
typedef struct {
    long long            sent;
    long long            refused;       /* the governor said no */
    long long            deferred;      /* to <prefix>:deferred, again later */
    long long            failed;        /* given up: in <prefix>:dead */
    long long            duplicates;    /* an idempotency key used before */
} wa_sender_counters_t;


typedef struct {
    const wa_options_t  *o;
    const wa_part_t     *part;
    wa_service_t         service;
    wa_link_t            link;
    wa_reader_t          reader;        /* the outbox, in the group */
    wa_sender_counters_t n;
    wa_http_t            http;          /* the requests in flight */
    wa_job_t            *ready;         /* in arrival order */
    wa_job_t           **ready_tail;
    long                 nready;
    int                  paused;        /* a token error: nothing goes */
    long long            next_pause_check;
    long long            next_claim;
    long long            next_trim;
    char                 outbox[256];
    char                 deferred[256];
    char                 entries[256];
    char                 sent[256];
    char                 dead[256];
    char                 alerts[256];
    char                 paused_key[256];
    atomic_int          *stop;          /* set: the sender stops */
    wa_pace_t            numbers;       /* this sender's copy of the pace */
    double               tolerance;     /* the pace's, ms */
} wa_sender_t;

/* "" for an absent value of an entry */
#define wa_opt(v)  ((v) ? (v) : "")

/* sender_job.c: a job into the ready queue (an invalid one is dead) */
int wa_job_add(wa_sender_t *s, const char *id, json_t *fields, int pending);

/*
 * sender_record.c: what is recorded of an entry: its commands queued in a
 * MULTI ... EXEC, and its outcome counted
 */
void wa_sender_multi(wa_sender_t *s);
void wa_sender_queue(wa_sender_t *s, wa_args_t *a);
int wa_sender_exec(wa_sender_t *s, int n);
void wa_sender_idem_key(wa_sender_t *s, const char *key, char *buf,
    size_t size);
void wa_sender_count(const char *outcome, const char *why);
int wa_sender_hold(wa_sender_t *s, const char *number, long long wait);

/* sender_deferred.c: the deferred set, taken back WA_DUE_MAX at a time */
#define WA_DUE_MAX  64

typedef struct {
    char                 id[64];
    json_t              *fields;
} wa_due_t;

long wa_deferred_take(wa_sender_t *s, wa_due_t *due, long max);
int wa_job_defer(wa_sender_t *s, wa_job_t *j, long long due_ms,
    const char *why);
/* the entry leaves the group or the deferred set: commands queued */
int wa_deferred_leave(wa_sender_t *s, wa_job_t *j);
void wa_deferred_give_back(wa_sender_t *s, wa_job_t *j);

void wa_job_free(wa_job_t *j);
int wa_job_parse(wa_job_t *j, const char **err);
int wa_job_start(wa_sender_t *s, wa_job_t *j);
int wa_job_dead(wa_sender_t *s, wa_job_t *j, const char *outcome,
    const char *why, long code);
/* a request that ended (a wa_http_done_pt): what it means, recorded */
int wa_job_ended(void *data, void *req, long status, CURLcode cc, int ok);

/* sender_govern.c: what may go now */
int wa_sender_dispatch(wa_sender_t *s);

/*
 * sender_reach.c: before the governor's call of a template, its user
 * reserved in the portfolio's reach: 0, and *defer the reply
 * {'defer', 'tier_limit', until} when the limit is reached; -1 when a link
 * broke.  wa_reach_end: the hold ends, sent (kept) or not (taken back).
 */
int wa_reach_reserve(wa_sender_t *s, wa_job_t *j, redisReply **defer);
void wa_reach_end(wa_sender_t *s, wa_job_t *j, int sent);

#endif /* WA_SENDER_H */
