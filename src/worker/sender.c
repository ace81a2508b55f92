/*
 * wa-relayd: the sender, a thread of its own with its own Redis connection.
 *
 * It reads <prefix>:outbox in the consumer group, asks the governor
 * (wa_govern_1 in redis/wa_state.lua) whether each entry may go, paces what
 * may go per business number and per recipient, and sends it to the Graph
 * API through libcurl's multi interface, many requests in flight.
 *
 *   outbox entry -> parsed -> ready queue (in memory, still pending in the
 *   group) -> governor -> pacing -> in flight -> sent | deferred | dead
 *
 * Entries that must wait longer than pacing allows (governor deferrals,
 * the pair limit, retries) go to <prefix>:deferred, a sorted set by due
 * time, with their fields in <prefix>:deferred:entries: a restart loses
 * none.  An entry leaves the outbox group (XACK) in the same MULTI that
 * puts it in its next place.
 */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "counters.h"
#include "log.h"
#include "sender.h"
#include "wa_partition.h"
#include "worker.h"

/* an idempotency key seen before: the entry is answered, not sent again */
static int
seen_before(wa_sender_t *s, const char *id, json_t *fields)
{
    int          dup;
    char         idem[512];
    wa_args_t    a;
    const char  *key;
    redisReply  *r;

    key = json_string_value(json_object_get(fields, "idempotency_key"));
    if (key == NULL || key[0] == '\0') {
        return 0;
    }

    wa_sender_idem_key(s, key, idem, sizeof(idem));
    wa_args(&a, "SET", idem, id, "NX", "EX", NULL);
    wa_args_ll(&a, WA_IDEM_TTL);
    wa_args_add(&a, "GET");

    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    dup = r->type == REDIS_REPLY_STRING;

    if (dup) {
        wa_log(WA_LOG_INFO, "sender: %s: idempotency key %s already used by "
                "%s, not sent again", id, key, r->str);

        wa_sender_multi(s);
        wa_args(&a, "XADD", s->sent, "*", WA_FIELD_V, WA_EVENTS_V,
                "outbox_id", id, "duplicate_of", NULL);
        wa_args_addn(&a, r->str, r->len);
        wa_sender_queue(s, &a);
        wa_args(&a, "XACK", s->outbox, s->o->group, id, NULL);
        wa_sender_queue(s, &a);
        freeReplyObject(r);
        s->n.duplicates++;
        wa_counters_add(WA_FAM_SENDER, "duplicate", "idempotency_key", 1);

        return wa_sender_exec(s, 3) == 0 ? 1 : -1;
    }

    freeReplyObject(r);

    return 0;
}

static json_t *
entry_fields(redisReply *e)
{
    size_t   i;
    json_t  *f;

    f = json_object();

    for (i = 0; f && i + 1 < e->elements; i += 2) {
        json_object_set_new(f, e->element[i]->str,
                            json_stringn(e->element[i + 1]->str,
                                         e->element[i + 1]->len));
    }

    return f;
}

/* outbox entries read or taken over (a wa_reader_take_pt) */
static int
take_entries(void *data, int stream, redisReply **entries, size_t n)
{
    int          rc;
    size_t       i;
    json_t      *f;
    wa_sender_t    *s = data;
    redisReply  *e;

    (void) stream;

    for (i = 0; i < n; i++) {
        e = entries[i];

        if (!wa_reader_valid(e)) {
            continue;
        }

        f = entry_fields(e->element[1]);
        if (f == NULL) {
            return -1;
        }

        rc = seen_before(s, e->element[0]->str, f);
        if (rc < 0) {
            json_decref(f);
            return -1;
        }

        if (rc == 1) {
            json_decref(f);
            continue;
        }

        if (wa_job_add(s, e->element[0]->str, f, 1) != 0) {
            return -1;
        }
    }

    return 0;
}

static int
read_outbox(wa_sender_t *s, long block_ms)
{
    int          rc;
    long         room;
    redisReply  *r, *entries;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    if (wa_reader_read(&s->reader, ">", room, block_ms, &r) != 0) {
        return -1;
    }

    entries = wa_reader_entries(&s->reader, r, 0);
    rc = entries ? take_entries(s, 0, entries->element, entries->elements)
                 : 0;

    if (r) {
        freeReplyObject(r);
    }

    return rc;
}

/* entries a dead sender held: taken over once idle */
static int
reclaim_outbox(wa_sender_t *s)
{
    return wa_reader_claim(&s->reader, 0, s->o->max_inflight, 1,
                           take_entries, s);
}

static int
pause_check(wa_sender_t *s)
{
    wa_args_t    a;
    redisReply  *r;

    wa_args(&a, "EXISTS", s->paused_key, NULL);
    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    if (s->paused && r->integer == 0) {
        wa_log(WA_LOG_INFO, "sender: resumed");
    }

    s->paused = r->integer != 0;
    freeReplyObject(r);

    return 0;
}

static void
drop_ready(void *data)
{
    wa_sender_t  *s = data;
    wa_job_t     *j;

    /* still pending in the group, or leased in the deferred set: safe */
    while ((j = s->ready) != NULL) {
        s->ready = j->next;
        wa_deferred_give_back(s, j);
        wa_job_free(j);
    }

    s->ready_tail = &s->ready;
    s->nready = 0;
}

/* deferred entries now due, into the ready queue as far as it has room */
static int
take_due(wa_sender_t *s)
{
    long      i, n, room;
    wa_due_t  due[WA_DUE_MAX];

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    /* the rest come next turn */
    n = wa_deferred_take(s, due, room < WA_DUE_MAX ? room : WA_DUE_MAX);

    for (i = 0; i < n; i++) {
        if (wa_job_add(s, due[i].id, due[i].fields, 0) != 0) {
            while (++i < n) {
                json_decref(due[i].fields);
            }

            return -1;
        }
    }

    return n < 0 ? -1 : 0;
}

/* counters in the log and in <prefix>:sender:<consumer> for operators */
static void
sender_stats(void *data)
{
    char          key[512];
    long long     v[7];
    wa_sender_t  *s = data;

    static const char  *names[] = {
        "sent", "refused", "deferred", "failed", "duplicates", "reclaimed",
        "dead"
    };

    v[0] = s->n.sent;
    v[1] = s->n.refused;
    v[2] = s->n.deferred;
    v[3] = s->n.failed;
    v[4] = s->n.duplicates;
    v[5] = s->reader.n.reclaimed;
    v[6] = s->reader.n.dead;

    wa_log(WA_LOG_INFO, "%s: sent %lld, refused %lld, deferred %lld, "
           "failed %lld, duplicates %lld, reclaimed %lld, dead %lld",
           s->service.name, v[0], v[1], v[2], v[3], v[4], v[5], v[6]);

    snprintf(key, sizeof(key), "%s:sender:%s", s->part->prefix,
             s->o->consumer);
    wa_link_counters(&s->link, key, names, v, 7);
}

/* what Redis holds for the sender, and what may go: -1, the link is gone */
static int
sender_redis(wa_sender_t *s, long long now)
{
    long  block;

    if (wa_clock_due(now, &s->next_pause_check, 1000)
        && pause_check(s) != 0)
    {
        return -1;
    }

    if (!atomic_load(s->stop) && !s->paused) {
        if (wa_clock_due(now, &s->next_claim, s->o->claim_idle_ms / 2 + 1)
            && reclaim_outbox(s) != 0)
        {
            return -1;
        }

        if (take_due(s) != 0) {
            return -1;
        }

        /* block on Redis only when there is nothing else to do */
        block = s->nready || s->http.inflight ? 0 : 100;

        if (read_outbox(s, block) != 0 || wa_sender_dispatch(s) != 0) {
            return -1;
        }
    }

    if (wa_clock_due(now, &s->next_trim, s->o->trim_interval_ms)
        && wa_trim_stream(&s->reader, 0, WA_STREAM_OUTBOX) != 0)
    {
        return -1;
    }

    return 0;
}

/* a turn: Redis's side, then the transfers and a wait for what is next */
static int
sender_turn(void *data, long long now)
{
    wa_sender_t  *s = data;

    if (sender_redis(s, now) != 0) {
        return -1;
    }

    if (s->http.inflight) {
        /* the last transfer done: the outbox, not curl, is what to wait on */
        return wa_http_run(&s->http, s->nready ? 1 : 20);
    }

    if (s->paused) {
        wa_clock_sleep_ms(100);

    } else if (s->nready) {
        /* only pacing holds the queue: wait for the next slot */
        struct timespec  ts = { 0, 500000 };
        nanosleep(&ts, NULL);
    }

    return 0;
}

static int
sender_connected(void *data)
{
    wa_sender_t  *s = data;

    s->next_claim = 0;

    return wa_reader_groups(&s->reader);
}

/* stopping: requests in flight are finished, nothing new is taken */
static int
sender_busy(void *data)
{
    wa_sender_t  *s = data;

    return s->http.inflight > 0;
}

static void
sender_free(void *data)
{
    wa_sender_t  *s = data;

    wa_http_free(&s->http);
    wa_pace_free(&s->numbers);
    free(s);
}

static const wa_service_hooks_t  wa_sender_hooks = {
    sender_connected, sender_turn, drop_ready, sender_busy, drop_ready,
    sender_stats, sender_free
};

/* the keys of its partition */
static void
sender_keys(wa_sender_t *s, const char *prefix)
{
    snprintf(s->outbox, sizeof(s->outbox), "%s:%s", prefix,
             WA_STREAM_OUTBOX);
    snprintf(s->deferred, sizeof(s->deferred), "%s:deferred", prefix);
    snprintf(s->entries, sizeof(s->entries), "%s:deferred:entries", prefix);
    snprintf(s->sent, sizeof(s->sent), "%s:sent", prefix);
    snprintf(s->dead, sizeof(s->dead), "%s:%s", prefix, WA_STREAM_DEAD);
    snprintf(s->alerts, sizeof(s->alerts), "%s:alerts", prefix);
    snprintf(s->paused_key, sizeof(s->paused_key), "%s:sender:paused",
             prefix);
}

int
wa_sender_start(const wa_options_t *o, const wa_part_t *part)
{
    wa_sender_t  *s;

    if (o->token == NULL) {
        return 0;
    }

    s = calloc(1, sizeof(wa_sender_t));
    if (s == NULL) {
        return -1;
    }

    s->o = o;
    s->part = part;
    s->ready_tail = &s->ready;
    sender_keys(s, part->prefix);

    wa_link_init(&s->link, o, part->slot, "sender: ");
    wa_reader_init(&s->reader, &s->link, part->prefix, s->dead);
    wa_reader_add(&s->reader, s->outbox);

    /*
     * A loop that comes late (a Redis round trip, a poll) may catch up:
     * the tolerance is half an interval, with a floor at high rates: a
     * second then stays close to the rate, which t/sender/s10 measures
     */
    s->tolerance = 500.0 / o->rate;
    if (s->tolerance < 5.0 && o->rate > 200) {
        s->tolerance = 5.0;
    }

    if (wa_http_init(&s->http, o, wa_job_ended, s) != 0
        || wa_pace_init(&s->numbers, 64) != 0)
    {
        sender_free(s);
        return -1;
    }

    wa_service_init(&s->service, "sender",
                    part->count > 1 ? part->prefix : NULL, &wa_sender_hooks,
                    s, &s->link, o->stats_interval_ms);

    /* what the sender's parts read to know it stops */
    s->stop = &s->service.stopping;

    if (wa_service_start(&s->service) != 0) {
        sender_free(s);
        return -1;
    }

    wa_log(WA_LOG_INFO, "%s: on, %s/%s, %ld messages/s per number",
           s->service.name, o->graph_url, o->graph_version, o->rate);

    return 0;
}
