/*
 * wa-relayd: the one loop of the services (service.h).
 */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "service.h"

/* the services started, the last first; only the main thread touches it */
static wa_service_t  *wa_services;


void
wa_service_init(wa_service_t *sv, const char *name, const char *part,
    const wa_service_hooks_t *hooks, void *data, wa_link_t *link,
    long stats_ms)
{
    memset(sv, 0, sizeof(wa_service_t));
    snprintf(sv->name, sizeof(sv->name), "%s%s%s", name, part ? " of " : "",
             part ? part : "");
    sv->hooks = hooks;
    sv->data = data;
    sv->link = link;
    sv->stats_ms = stats_ms;
}


/* what the link had is forgotten, and the link made again next */
static void
wa_service_lost(wa_service_t *sv)
{
    if (sv->hooks->lost) {
        sv->hooks->lost(sv->data);
    }

    wa_link_lost(sv->link);
}


/* a link made again: its preamble, then what the service does first */
static int
wa_service_connect(wa_service_t *sv)
{
    if (wa_link_connect(sv->link, &sv->stopping) != 0) {
        return -1;
    }

    if (sv->hooks->connected && sv->hooks->connected(sv->data) != 0) {
        wa_service_lost(sv);
        return -1;
    }

    return 0;
}


static void *
wa_service_main(void *arg)
{
    long long                  now, next_stats;
    wa_service_t              *sv = arg;
    const wa_service_hooks_t  *h = sv->hooks;

    next_stats = wa_clock_ms() + sv->stats_ms;

    while (!atomic_load(&sv->stopping) || (h->busy && h->busy(sv->data))) {

        if (sv->link->c == NULL && wa_service_connect(sv) != 0) {
            if (atomic_load(&sv->stopping)) {
                /* what is in flight cannot be recorded: it is done again */
                break;
            }

            continue;
        }

        now = wa_clock_ms();

        if (h->turn(sv->data, now) != 0) {
            wa_service_lost(sv);
            continue;
        }

        if (h->stats && wa_clock_due(now, &next_stats, sv->stats_ms)) {
            h->stats(sv->data);
        }
    }

    if (h->stop) {
        h->stop(sv->data);
    }

    if (h->stats) {
        h->stats(sv->data);
    }

    wa_link_close(sv->link);
    wa_log(WA_LOG_INFO, "%s: stopped", sv->name);

    return NULL;
}


int
wa_service_start(wa_service_t *sv)
{
    int       rc;
    sigset_t  all, old;

    /* signals are the main thread's: it is the one that waits for them */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&sv->thread, NULL, wa_service_main, sv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc != 0) {
        wa_log(WA_LOG_ERROR, "%s: cannot start its thread: %s", sv->name,
               strerror(rc));
        return -1;
    }

    sv->prev = wa_services;
    wa_services = sv;

    return 0;
}


void
wa_services_stop(void)
{
    wa_service_t  *sv, *prev;

    for (sv = wa_services; sv; sv = sv->prev) {
        atomic_store(&sv->stopping, 1);
    }

    for (sv = wa_services; sv; sv = prev) {
        prev = sv->prev;
        pthread_join(sv->thread, NULL);

        if (sv->hooks->free) {
            sv->hooks->free(sv->data);
        }
    }

    wa_services = NULL;
}
