/*
 * wa-relayd: the consumer of a partition, a service (service.h).
 *
 *   each turn:  reclaim what dead consumers left (every claim-idle/2)
 *               read a batch with XREADGROUP BLOCK, apply and acknowledge
 *               the one read before meanwhile (consume.c)
 *               trim by progress (every trim-interval)
 *   stopped:    the batch in hand is applied
 *
 * Several wa-relayd share each partition through the consumer group.
 */

#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "worker.h"


static int
consumer_connected(void *data)
{
    wa_worker_t  *w = data;

    w->next_claim = 0;

    return wa_consume_start(w);
}


/* one turn: -1 when the link is gone */
static int
consumer_turn(void *data, long long now)
{
    wa_worker_t  *w = data;

    if (wa_clock_due(now, &w->next_claim, w->o->claim_idle_ms / 2 + 1)
        && wa_consume_reclaim(w) != 0)
    {
        return -1;
    }

    if (wa_consume_read(w) != 0) {
        return -1;
    }

    if (wa_clock_due(wa_clock_ms(), &w->next_trim, w->o->trim_interval_ms)
        && wa_consume_trim(w) != 0)
    {
        return -1;
    }

    return 0;
}


static void
consumer_lost(void *data)
{
    wa_consume_forget(data);
}


static void
consumer_stop(void *data)
{
    wa_worker_t  *w = data;

    wa_log(WA_LOG_INFO, "%s: stopping: the batch in hand is applied",
           w->service.name);

    if (w->link.c && wa_consume_drain(w) != 0) {
        wa_log(WA_LOG_ERROR, "the batch in hand is left pending");
    }
}


/* counters in the log and in <prefix>:worker:<consumer> for operators */
static void
consumer_stats(void *data)
{
    char                   key[512];
    double                 secs;
    long long              v[9], now;
    wa_worker_t           *w = data;
    wa_reader_counters_t  *rn;

    static const char  *names[] = {
        "applied", "duplicates", "skipped", "dead", "reclaimed", "errors",
        "trimmed", "capped", "seen_at"
    };

    rn = &w->reader.n;
    now = wa_clock_ms();
    secs = (now - w->since) / 1000.0;

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
           "%lld", w->part->count > 1 ? w->part->prefix : "",
           w->part->count > 1 ? ": " : "",
           v[0], secs > 0 ? (w->n.applied - w->last.applied) / secs : 0.0,
           v[1], v[2], v[3], v[4], v[5], v[6]);

    w->last = w->n;
    w->since = now;

    snprintf(key, sizeof(key), "%s:worker:%s", w->part->prefix,
             w->o->consumer);
    wa_link_counters(&w->link, key, names, v, 9);
}


static void
consumer_free(void *data)
{
    wa_consume_forget(data);
    free(data);
}


static const wa_service_hooks_t  wa_consumer_hooks = {
    consumer_connected, consumer_turn, consumer_lost, NULL, consumer_stop,
    consumer_stats, consumer_free
};


int
wa_consumer_start(const wa_options_t *o, const wa_part_t *part,
    const char *apply_options)
{
    wa_worker_t  *w;

    w = malloc(sizeof(wa_worker_t));
    if (w == NULL) {
        return -1;
    }

    wa_consume_init(w, o, part);
    w->apply_options = apply_options;
    w->since = wa_clock_ms();

    wa_service_init(&w->service, "consumer",
                    part->count > 1 ? part->prefix : NULL,
                    &wa_consumer_hooks, w, &w->link, o->stats_interval_ms);

    if (wa_service_start(&w->service) != 0) {
        free(w);
        return -1;
    }

    return 0;
}
