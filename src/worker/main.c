/*
 * wa-relayd: the worker.  Reads the streams the nginx module fills, in a
 * consumer group, and keeps WhatsApp's session, quality and consent state
 * in Redis (docs/state.md).
 *
 * The work is done by services (service.h), a thread and a Redis link
 * each: per partition a consumer (consumer.c), a sender (--token-file,
 * sender.c) and a media fetcher (--media-dir, media.c).  Without
 * --partitions the process has one partition, the single-instance layout;
 * with --cluster each service talks to the node that serves its
 * partition.  The metrics server (--metrics, metrics.c) has threads of its
 * own.  The main thread starts them all, waits for a signal, and stops
 * them the other way round: one path, whatever the layout.
 *
 * SIGTERM/SIGINT: each consumer applies the batch in hand, each sender
 * finishes its requests in flight, and the process exits 0; SIGHUP reopens
 * the log.  A lost Redis connection is made again with a backoff; Redis
 * refusing the user (credentials, a permission) stops it with exit 2.
 */

#include <signal.h>
#include <stdatomic.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

    /* the main thread's wait, cut short (services block signals) */
    kill(getpid(), SIGTERM);
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


/*
 * <prefix>:partitions, for readers downstream to find every partition's
 * streams: "count", then "<p>" -> "<prefix>:{<tag>}" (docs/events.md)
 */
static int
partitions_publish(const wa_options_t *o, const wa_part_t *parts)
{
    char          key[300];
    long          i;
    wa_args_t     a;
    wa_link_t     l;
    redisReply   *r;

    snprintf(key, sizeof(key), "%s:partitions", o->prefix);

    /* its own slot */
    wa_link_init(&l, o, (int) wa_key_slot(key, strlen(key)), "");

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
        wa_args_add(&a, parts[i].prefix);

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


/* what is in Redis before any service reads it: 0, or -1 */
static int
publish(const wa_options_t *o, const wa_part_t *parts)
{
    /* --portfolio, for the senders */
    if (wa_portfolios_publish(o, &wa_stopping) != 0) {
        return -1;
    }

    return o->partitions > 1 ? partitions_publish(o, parts) : 0;
}


/*
 * The services, in the order they stop the other way round: the senders
 * and the media fetchers, then the consumers (the first to stop, so that
 * what they apply last is still sent).
 */
static int
start(const wa_options_t *o, const wa_part_t *parts, long n,
    const char *apply_options)
{
    long  p;

    for (p = 0; p < n; p++) {
        if (wa_sender_start(o, &parts[p]) != 0) {
            wa_log(WA_LOG_ERROR, "cannot start the sender of %s",
                   parts[p].prefix);
            return -1;
        }
    }

    for (p = 0; p < n; p++) {
        if (wa_media_start(o, &parts[p]) != 0) {
            wa_log(WA_LOG_ERROR, "cannot start the media fetcher of %s",
                   parts[p].prefix);
            return -1;
        }
    }

    for (p = 0; p < n; p++) {
        if (wa_consumer_start(o, &parts[p], apply_options) != 0) {
            wa_log(WA_LOG_ERROR, "cannot start the consumer of %s",
                   parts[p].prefix);
            return -1;
        }
    }

    return 0;
}


/* until SIGTERM or SIGINT; SIGHUP reopens the log meanwhile */
static void
wait_for_stop(void)
{
    sigset_t  stop, old;

    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);

    /* a signal between the test and the wait is not lost: it waits */
    pthread_sigmask(SIG_BLOCK, &stop, &old);

    for ( ;; ) {
        if (atomic_exchange(&wa_reopen, 0)) {
            if (wa_log_reopen() != 0) {
                fprintf(stderr, "wa-relayd: cannot reopen the log\n");
            }
            wa_log(WA_LOG_INFO, "log reopened");
        }

        if (atomic_load(&wa_stopping)) {
            break;
        }

        sigsuspend(&old);
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);
}


/* the partitions of the process, each with its prefix and slot */
static wa_part_t *
parts_new(const wa_options_t *o)
{
    long        p;
    wa_part_t  *parts;

    parts = calloc(wa_part_count(o), sizeof(wa_part_t));
    if (parts == NULL) {
        return NULL;
    }

    for (p = 0; p < wa_part_count(o); p++) {
        if (wa_part_init(&parts[p], o, (unsigned) p) != 0) {
            free(parts);
            return NULL;
        }
    }

    return parts;
}


/* what the services read, ready: 0, or the exit code */
static int
prepare(wa_options_t *o, wa_part_t **parts, char **apply_options)
{
    if (wa_log_open(o->log_file, o->log_level) != 0) {
        fprintf(stderr, "wa-relayd: cannot open log %s, or bad level %s\n",
                o->log_file ? o->log_file : "stderr", o->log_level);
        return 2;
    }

    signals();
    wa_link_on_denied(on_denied);

    *apply_options = wa_replies_options(o);
    *parts = parts_new(o);

    if (*apply_options == NULL || *parts == NULL
        || curl_global_init(CURL_GLOBAL_DEFAULT) != 0
        || (o->partitions > 1 && wa_peers_init(o) != 0))
    {
        wa_log(WA_LOG_ERROR, "out of memory");
        return 1;
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int            rc;
    char          *apply_options;
    wa_part_t     *parts;
    wa_options_t   o;

    if (wa_options_parse(&o, argc, argv) != 0) {
        return 2;
    }

    apply_options = NULL;
    parts = NULL;

    rc = prepare(&o, &parts, &apply_options);

    if (rc == 0 && publish(&o, parts) != 0) {
        rc = atomic_load(&wa_stopping) ? 0 : 1;
        atomic_store(&wa_stopping, 1);
    }

    if (rc == 0 && !atomic_load(&wa_stopping)) {
        wa_log(WA_LOG_INFO, "wa-relayd starting: consumer %s of group %s, "
               "prefix %s, %ld partition%s, Redis %s%s", o.consumer, o.group,
               o.prefix, o.partitions, o.partitions > 1 ? "s" : "",
               o.cluster ? "cluster " : "", o.cluster ? o.cluster : o.redis);

        /* first: the services count into it from their start */
        if (wa_metrics_start(&o) != 0
            || start(&o, parts, wa_part_count(&o), apply_options) != 0)
        {
            rc = 1;

        } else {
            wait_for_stop();
        }
    }

    /* the one way out: what was started stops, then what it read goes */
    wa_services_stop();
    wa_metrics_stop();
    wa_peers_free();
    wa_options_free(&o);
    free(parts);
    free(apply_options);
    curl_global_cleanup();
    wa_log(WA_LOG_INFO, "wa-relayd stopped");

    return rc ? rc : atomic_load(&wa_exit_code);
}
