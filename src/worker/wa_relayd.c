/*
 * wa-relayd: the worker.  Reads the streams the nginx module fills, in a
 * consumer group, and keeps WhatsApp's session, quality and consent state
 * in Redis (docs/state.md).
 *
 * Threads of their own: the sender (--token-file, sender.c), the media
 * fetcher (--media-dir, media.c) and the metrics server (--metrics,
 * metrics.c).  With --partitions N, each partition's streams are read by a
 * consumer loop of its own, in a thread, on a link to the node that
 * serves the partition (--cluster); several wa-relayd share each
 * partition through the consumer group.
 *
 *   main loop:  reclaim what dead consumers left (every claim-idle/2)
 *               read a batch with XREADGROUP BLOCK, apply and acknowledge
 *               the one read before meanwhile (consume.c)
 *               trim by progress (every trim-interval)
 *               log and publish counters (every stats-interval)
 *
 * SIGTERM/SIGINT finish the batch in hand and exit 0; SIGHUP reopens the
 * log.  A lost Redis connection is made again with a backoff; Redis
 * refusing the user (credentials, a permission) stops it with exit code 2.
 */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "portfolio.h"
#include "wa_partition.h"
#include "worker.h"

/* set by signal handlers: lock-free atomics are safe to write there */
static atomic_int  wa_stopping;
static atomic_int  wa_reopen;
static atomic_int  wa_exit_code;


static void
on_stop(int sig)
{
    (void) sig;
    atomic_store(&wa_stopping, 1);
}


/* Redis refused the user (logged by the link): a clear exit, not a loop */
static void
on_denied(void)
{
    atomic_store(&wa_exit_code, 2);
    atomic_store(&wa_stopping, 1);
}


static void
on_hup(int sig)
{
    (void) sig;
    atomic_store(&wa_reopen, 1);
}


static void
signals(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);

    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}


/* counters in the log and in <prefix>:worker:<consumer> for operators */
static void
stats(wa_worker_t *w, long long since, wa_counters_t *last)
{
    char                   key[512];
    double                 secs;
    long long              v[9];
    wa_reader_counters_t  *rn;

    static const char  *names[] = {
        "applied", "duplicates", "skipped", "dead", "reclaimed", "errors",
        "trimmed", "capped", "seen_at"
    };

    rn = &w->reader.n;
    secs = (wa_clock_ms() - since) / 1000.0;

    v[0] = w->n.applied;
    v[1] = w->n.duplicates;
    v[2] = w->n.skipped;
    v[3] = w->n.dead + rn->dead;
    v[4] = rn->reclaimed;
    v[5] = w->n.errors;
    v[6] = rn->trimmed;
    v[7] = rn->capped;
    v[8] = (long long) time(NULL);

    wa_log(WA_LOG_INFO, "%s%sapplied %lld (%.0f/s), duplicates %lld, "
           "skipped %lld, dead %lld, reclaimed %lld, errors %lld, trimmed "
           "%lld", w->o->partitions > 1 ? w->o->prefix : "",
           w->o->partitions > 1 ? ": " : "",
           v[0], secs > 0 ? (w->n.applied - last->applied) / secs : 0.0,
           v[1], v[2], v[3], v[4], v[5], v[6]);

    *last = w->n;

    snprintf(key, sizeof(key), "%s:worker:%s", w->o->prefix,
             w->o->consumer);
    wa_link_counters(&w->link, key, names, v, 9);
}


/* when the loop's periodic parts run next, and the counters last logged */
typedef struct {
    long long       next_claim;
    long long       next_trim;
    long long       next_stats;
    long long       since;
    wa_counters_t   last;
} wa_timers_t;


/* one turn of the consumer loop: -1 when the link is gone */
static int
turn(wa_worker_t *w, wa_timers_t *tm)
{
    long long  now;

    now = wa_clock_ms();

    if (wa_clock_due(now, &tm->next_claim, w->o->claim_idle_ms / 2 + 1)
        && wa_consume_reclaim(w) != 0)
    {
        return -1;
    }

    if (wa_consume_read(w) != 0) {
        return -1;
    }

    now = wa_clock_ms();

    if (wa_clock_due(now, &tm->next_trim, w->o->trim_interval_ms)
        && wa_consume_trim(w) != 0)
    {
        return -1;
    }

    if (wa_clock_due(now, &tm->next_stats, w->o->stats_interval_ms)) {
        stats(w, tm->since, &tm->last);
        tm->since = now;
    }

    return 0;
}


/* the consumer loop, until SIGTERM: the batch in hand is applied then */
static void
run(wa_worker_t *w, wa_timers_t *tm)
{
    while (!atomic_load(&wa_stopping)) {

        if (atomic_exchange(&wa_reopen, 0)) {
            if (wa_log_reopen() != 0) {
                fprintf(stderr, "wa-relayd: cannot reopen the log\n");
            }
            wa_log(WA_LOG_INFO, "log reopened");
        }

        if (w->link.c == NULL) {
            if (wa_link_connect(&w->link, &wa_stopping) != 0) {
                continue;
            }

            tm->next_claim = 0;

            if (wa_consume_start(w) != 0) {
                wa_consume_forget(w);
                wa_link_lost(&w->link);
                continue;
            }
        }

        if (turn(w, tm) != 0) {
            wa_consume_forget(w);
            wa_link_lost(&w->link);
        }
    }

    wa_log(WA_LOG_INFO, "stopping: the batch in hand is applied");

    if (w->link.c && wa_consume_drain(w) != 0) {
        wa_log(WA_LOG_ERROR, "the batch in hand is left pending");
    }
}


/* a partition's consumer loop: the worker's options, its own prefix */
typedef struct {
    wa_options_t   o;
    char           prefix[300];
    char          *apply_options;
    wa_worker_t    w;
    wa_timers_t    tm;
    pthread_t      thread;
} wa_lane_t;


static void
lane_init(wa_lane_t *lane, const wa_options_t *o, unsigned p,
    char *apply_options)
{
    memset(lane, 0, sizeof(wa_lane_t));

    lane->o = *o;
    wa_partition_prefix(o->prefix, strlen(o->prefix), p,
                        (unsigned) o->partitions, lane->prefix,
                        sizeof(lane->prefix));
    lane->o.prefix = lane->prefix;

    /* every key of the partition is in its prefix's slot */
    lane->o.slot = (int) wa_key_slot(lane->prefix, strlen(lane->prefix));

    wa_consume_init(&lane->w, &lane->o);
    lane->w.apply_options = apply_options;

    lane->tm.since = wa_clock_ms();
    lane->tm.next_stats = lane->tm.since + o->stats_interval_ms;
}


static void *
lane_run(void *data)
{
    wa_lane_t  *lane = data;

    run(&lane->w, &lane->tm);

    return NULL;
}


static void
lane_stop(wa_lane_t *lane)
{
    stats(&lane->w, lane->tm.since, &lane->tm.last);
    wa_link_close(&lane->w.link);
}


/*
 * <prefix>:partitions, for readers downstream to find every partition's
 * streams: "count", then "<p>" -> "<prefix>:{<tag>}" (docs/events.md)
 */
static int
partitions_publish(const wa_options_t *o, wa_lane_t *lanes)
{
    char          key[300];
    long          i;
    wa_args_t     a;
    wa_link_t     l;
    redisReply   *r;

    snprintf(key, sizeof(key), "%s:partitions", o->prefix);

    wa_link_init(&l, o, "");
    l.slot = (int) wa_key_slot(key, strlen(key));   /* its own */

    while (wa_link_connect(&l, &wa_stopping) != 0) {
        if (atomic_load(&wa_stopping)) {
            return -1;
        }
    }

    for (i = 0; i < o->partitions; i++) {
        wa_args(&a, "HSET", key, NULL);
        if (i == 0) {
            wa_args_add(&a, "count");
            wa_args_ll(&a, o->partitions);
        }
        wa_args_ll(&a, i);
        wa_args_add(&a, lanes[i].prefix);

        r = wa_link_call(&l, &a);
        if (wa_link_failed(&l, r, "HSET partitions")) {
            wa_link_close(&l);
            return -1;
        }
        freeReplyObject(r);
    }

    wa_link_close(&l);

    return 0;
}


/* a consumer loop per partition, until SIGTERM */
static int
run_partitions(const wa_options_t *o, char *apply_options)
{
    int         rc;
    long        i, started;
    wa_lane_t  *lanes;

    lanes = calloc(o->partitions, sizeof(wa_lane_t));
    if (lanes == NULL) {
        wa_log(WA_LOG_ERROR, "out of memory");
        return -1;
    }

    for (i = 0; i < o->partitions; i++) {
        lane_init(&lanes[i], o, (unsigned) i, apply_options);
    }

    if (partitions_publish(o, lanes) != 0) {
        free(lanes);
        return atomic_load(&wa_stopping) ? 0 : -1;
    }

    rc = 0;

    /* a sender per partition, reading other partitions through peers */
    for (i = 0; o->token && i < o->partitions; i++) {
        if (wa_sender_start(&lanes[i].o) != 0) {
            wa_log(WA_LOG_ERROR, "cannot start the sender of partition %ld",
                   i);
            atomic_store(&wa_stopping, 1);
            rc = -1;
            break;
        }
    }

    for (started = 0; rc == 0 && started < o->partitions; started++) {
        if (pthread_create(&lanes[started].thread, NULL, lane_run,
                           &lanes[started])
            != 0)
        {
            wa_log(WA_LOG_ERROR, "cannot start the consumer of partition "
                   "%ld", started);
            atomic_store(&wa_stopping, 1);
            rc = -1;
            break;
        }
    }

    while (started-- > 0) {
        pthread_join(lanes[started].thread, NULL);
        lane_stop(&lanes[started]);
    }

    /* they read the lanes' options */
    wa_sender_stop();
    free(lanes);

    return rc;
}


int
main(int argc, char **argv)
{
    wa_options_t   o;
    wa_worker_t    w;
    wa_timers_t    tm;

    if (wa_options_parse(&o, argc, argv) != 0) {
        return 2;
    }

    if (wa_log_open(o.log_file, o.log_level) != 0) {
        fprintf(stderr, "wa-relayd: cannot open log %s, or bad level %s\n",
                o.log_file ? o.log_file : "stderr", o.log_level);
        return 2;
    }

    signals();
    wa_link_on_denied(on_denied);

    wa_consume_init(&w, &o);

    w.apply_options = wa_replies_options(&o);
    if (w.apply_options == NULL
        || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
    {
        wa_log(WA_LOG_ERROR, "out of memory");
        return 1;
    }

    /* links to every partition, for the senders and the metrics */
    if (o.partitions > 1 && wa_peers_init(&o) != 0) {
        wa_log(WA_LOG_ERROR, "out of memory");
        return 1;
    }

    /* --portfolio, in Redis before any sender reads it */
    if (wa_portfolios_publish(&o, &wa_stopping) != 0) {
        return atomic_load(&wa_stopping) ? 0 : 1;
    }

    /* first: the threads below count into it from their start */
    if (wa_metrics_start(&o) != 0) {
        return 1;
    }

    /* with partitions, a sender per partition (run_partitions) */
    if (o.partitions == 1 && !o.cluster && wa_sender_start(&o) != 0) {
        wa_log(WA_LOG_ERROR, "cannot start the sender");
        return 1;
    }

    if (wa_media_start(&o) != 0) {
        wa_log(WA_LOG_ERROR, "cannot start the media fetcher");
        return 1;
    }

    wa_log(WA_LOG_INFO, "wa-relayd starting: consumer %s of group %s, "
           "prefix %s, %ld partition%s, Redis %s%s", o.consumer, o.group,
           o.prefix, o.partitions, o.partitions > 1 ? "s" : "",
           o.cluster ? "cluster " : "", o.cluster ? o.cluster : o.redis);

    if (o.partitions > 1 || o.cluster) {
        /* the senders stop in it: they read its partitions' options */
        if (run_partitions(&o, w.apply_options) != 0) {
            atomic_store(&wa_exit_code, 1);
        }

    } else {
        memset(&tm, 0, sizeof(wa_timers_t));
        tm.since = wa_clock_ms();
        tm.next_stats = tm.since + o.stats_interval_ms;

        run(&w, &tm);

        wa_sender_stop();
        wa_media_stop();
        stats(&w, tm.since, &tm.last);
    }

    wa_metrics_stop();
    wa_peers_free();
    wa_link_close(&w.link);
    wa_options_free(&o);
    free(w.apply_options);
    curl_global_cleanup();
    wa_log(WA_LOG_INFO, "wa-relayd stopped");

    return atomic_load(&wa_exit_code);
}
