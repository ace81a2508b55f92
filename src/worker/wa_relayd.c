/*
 * wa-relayd: the worker.  Reads the streams the nginx module fills, in a
 * consumer group, and keeps WhatsApp's session, quality and consent state
 * in Redis (docs/state.md).
 *
 *   main loop:  reclaim what dead consumers left (every claim-idle/2)
 *               read a batch with XREADGROUP BLOCK, apply and acknowledge
 *               the one read before meanwhile (consume.c)
 *               trim by progress (every trim-interval)
 *               log and publish counters (every stats-interval)
 *
 * SIGTERM/SIGINT finish the batch in hand and exit 0; SIGHUP reopens the
 * log.  A lost Redis connection is made again with a backoff.
 */

#include <signal.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "worker.h"

static volatile sig_atomic_t  stopping;
static volatile sig_atomic_t  reopen;


static void
on_stop(int sig)
{
    (void) sig;
    stopping = 1;
}


static void
on_hup(int sig)
{
    (void) sig;
    reopen = 1;
}


long long
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


long long
now_wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
pause_ms(long ms)
{
    struct timespec  ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    /* a signal cuts it short, which is what we want */
    nanosleep(&ts, NULL);
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
stats(worker_t *w, long long since, counters_t *last)
{
    double       secs;
    redisReply  *r;

    secs = (now_ms() - since) / 1000.0;

    log_msg(LOG_INFO, "applied %lld (%.0f/s), duplicates %lld, skipped %lld,"
            " dead %lld, reclaimed %lld, errors %lld, trimmed %lld",
            w->n.applied, secs > 0 ? (w->n.applied - last->applied) / secs
                                   : 0.0,
            w->n.duplicates, w->n.skipped, w->n.dead, w->n.reclaimed,
            w->n.errors, w->n.trimmed);

    *last = w->n;

    if (w->c == NULL) {
        return;
    }

    r = redisCommand(w->c, "HSET %s:worker:%s applied %lld duplicates %lld "
                     "skipped %lld dead %lld reclaimed %lld errors %lld "
                     "trimmed %lld capped %lld seen_at %lld",
                     w->o->prefix, w->o->consumer, w->n.applied,
                     w->n.duplicates, w->n.skipped, w->n.dead,
                     w->n.reclaimed, w->n.errors, w->n.trimmed, w->n.capped,
                     (long long) time(NULL));
    if (r) {
        freeReplyObject(r);
    }
}


int
main(int argc, char **argv)
{
    int          i;
    long         backoff;
    long long    now, next_claim, next_trim, next_stats, since;
    options_t    o;
    worker_t     w;
    counters_t   last;

    if (options_parse(&o, argc, argv) != 0) {
        return 2;
    }

    if (log_open(o.log_file, o.log_level) != 0) {
        fprintf(stderr, "wa-relayd: cannot open log %s, or bad level %s\n",
                o.log_file ? o.log_file : "stderr", o.log_level);
        return 2;
    }

    signals();

    memset(&w, 0, sizeof(w));
    w.o = &o;

    w.apply_options = replies_options(&o);
    if (w.apply_options == NULL
        || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
    {
        log_msg(LOG_ERROR, "out of memory");
        return 1;
    }

    if (sender_start(&o) != 0) {
        log_msg(LOG_ERROR, "cannot start the sender");
        return 1;
    }

    for (i = 0; i < NSTREAMS; i++) {
        snprintf(w.stream[i], sizeof(w.stream[i]), "%s:%s", o.prefix,
                 stream_names[i]);
    }

    snprintf(w.dead, sizeof(w.dead), "%s:dead", o.prefix);

    log_msg(LOG_INFO, "wa-relayd starting: consumer %s of group %s, "
            "prefix %s, Redis %s", o.consumer, o.group, o.prefix, o.redis);

    backoff = 100;
    next_claim = next_trim = 0;
    since = next_stats = now_ms();
    next_stats += o.stats_interval_ms;
    last = w.n;

    while (!stopping) {

        if (reopen) {
            reopen = 0;
            if (log_reopen() != 0) {
                fprintf(stderr, "wa-relayd: cannot reopen the log\n");
            }
            log_msg(LOG_INFO, "log reopened");
        }

        if (w.c == NULL) {
            w.c = conn_open(&o);

            if (w.c == NULL || consume_groups(&w) != 0
                || consume_own_pending(&w) != 0)
            {
                if (w.c) {
                    redisFree(w.c);
                    w.c = NULL;
                }

                log_msg(LOG_WARN, "retrying in %ld ms", backoff);
                pause_ms(backoff);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }

            backoff = 100;
            next_claim = 0;
        }

        now = now_ms();

        if (now >= next_claim) {
            if (consume_reclaim(&w) != 0) {
                goto lost;
            }
            next_claim = now + o.claim_idle_ms / 2 + 1;
        }

        if (consume_read(&w) != 0) {
            goto lost;
        }

        now = now_ms();

        if (now >= next_trim) {
            if (trim_streams(&w) != 0) {
                goto lost;
            }
            next_trim = now + o.trim_interval_ms;
        }

        if (now >= next_stats) {
            stats(&w, since, &last);
            since = now;
            next_stats = now + o.stats_interval_ms;
        }

        continue;

    lost:

        log_msg(LOG_ERROR, "lost the Redis connection; reconnecting");
        consume_forget(&w);
        redisFree(w.c);
        w.c = NULL;
    }

    log_msg(LOG_INFO, "stopping: the batch in hand is applied");

    if (w.c && consume_drain(&w) != 0) {
        log_msg(LOG_ERROR, "the batch in hand is left pending");
    }

    sender_stop();
    stats(&w, since, &last);

    if (w.c) {
        redisFree(w.c);
    }

    options_free(&o);
    free(w.apply_options);
    curl_global_cleanup();
    log_msg(LOG_INFO, "wa-relayd stopped");

    return 0;
}
