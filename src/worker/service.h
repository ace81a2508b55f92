/*
 * wa-relayd: a service is a thread with a Redis link of its own: the
 * consumer of a partition (consume.c), the sender of a partition
 * (sender.c), the media fetcher (media.c).  One loop runs them all:
 *
 *   connect (with the link's backoff) -> connected -> turn, turn, ...
 *   a turn that finds the link gone -> lost -> connect again
 *   every --stats-interval-ms -> stats
 *   stopped -> turns go on while busy -> stop -> stats -> link closed
 *
 * main.c starts the services and stops them in the reverse order, and only
 * then frees what they read.
 */

#ifndef WA_SERVICE_H
#define WA_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>

#include "link.h"

typedef struct wa_service_s  wa_service_t;

/* what a service does; data is its own struct.  -1: the link is gone */
typedef struct {
    int        (*connected)(void *data);        /* groups, what is pending */
    int        (*turn)(void *data, long long now);
    void       (*lost)(void *data);             /* forget what the link had */
    int        (*busy)(void *data);             /* stopping: still to end */
    void       (*stop)(void *data);             /* what is in hand, ended */
    void       (*stats)(void *data);            /* counters: log and Redis */
    void       (*free)(void *data);             /* after the thread ended */
} wa_service_hooks_t;

struct wa_service_s {
    char                       name[320];   /* for log lines */
    const wa_service_hooks_t  *hooks;
    void                      *data;
    wa_link_t                 *link;
    long                       stats_ms;
    atomic_int                 stopping;    /* set: the loop ends */
    pthread_t                  thread;
    wa_service_t              *prev;        /* started before it */
};

/* name: "sender", "consumer"; part: its partition's prefix, or NULL */
void wa_service_init(wa_service_t *sv, const char *name, const char *part,
    const wa_service_hooks_t *hooks, void *data, wa_link_t *link,
    long stats_ms);

/* its thread started and the service in the list main.c stops: 0 or -1 */
int wa_service_start(wa_service_t *sv);

/*
 * Every service started, stopped: all told at once (each then ends what
 * it has in hand), and joined and freed the last started first.
 */
void wa_services_stop(void);

#endif /* WA_SERVICE_H */
