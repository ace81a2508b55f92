/*
 * wa-relayd: the worker.  Reads the streams the nginx module fills, in a
 * consumer group, and keeps WhatsApp's session, quality and consent state
 * in Redis (docs/state.md).
 *
 * Threads of their own: the sender (--token-file, sender.c), the media
 * fetcher (--media-dir, media.c) and the metrics server (--metrics,
 * metrics.c).
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

    wa_log(WA_LOG_INFO, "applied %lld (%.0f/s), duplicates %lld, skipped "
           "%lld, dead %lld, reclaimed %lld, errors %lld, trimmed %lld",
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

    /* first: the threads below count into it from their start */
    if (wa_metrics_start(&o) != 0) {
        return 1;
    }

    if (wa_sender_start(&o) != 0) {
        wa_log(WA_LOG_ERROR, "cannot start the sender");
        return 1;
    }

    if (wa_media_start(&o) != 0) {
        wa_log(WA_LOG_ERROR, "cannot start the media fetcher");
        return 1;
    }

    wa_log(WA_LOG_INFO, "wa-relayd starting: consumer %s of group %s, "
           "prefix %s, Redis %s", o.consumer, o.group, o.prefix, o.redis);

    memset(&tm, 0, sizeof(wa_timers_t));
    tm.since = wa_clock_ms();
    tm.next_stats = tm.since + o.stats_interval_ms;

    run(&w, &tm);

    wa_sender_stop();
    wa_media_stop();
    wa_metrics_stop();
    stats(&w, tm.since, &tm.last);

    wa_link_close(&w.link);
    wa_options_free(&o);
    free(w.apply_options);
    curl_global_cleanup();
    wa_log(WA_LOG_INFO, "wa-relayd stopped");

    return atomic_load(&wa_exit_code);
}
