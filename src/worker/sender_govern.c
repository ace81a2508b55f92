/*
 * wa-relayd: what may go now.  Each ready job asks the governor
 * (wa_govern_1 in redis/wa_state.lua), which also paces its number and its
 * recipient in Redis, for every worker that sends for them.  The sender
 * keeps its own copy of each number's pace, so that a number told to wait
 * is not asked about again before its time.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "peer.h"
#include "sender.h"
#include "wa_partition.h"


/* a string reply's value as an argument, "" for nil */
static void
wa_args_reply(wa_args_t *a, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_STRING) {
        wa_args_addn(a, r->str, r->len);

    } else {
        wa_args_add(a, "");
    }
}


/*
 * With partitions, the WABA's state the governor reads (its template's
 * status, its restriction, the number's tier) is where the WABA's events
 * put it, in the WABA's partition: read there, a plain read of a value
 * Meta changes a few times a day (docs/redis.md, "What crosses
 * partitions"), and given to the governor after its own arguments.  The
 * replies stay until the call is formatted: freed by the caller through
 * *keep.  0, or -1 when a link broke.
 */
static int
wa_sender_waba(wa_sender_t *s, wa_job_t *j, wa_args_t *a, redisReply **keep)
{
    int           i;
    char          key[3][512];   /* the commands point to their keys */
    unsigned      p;
    wa_args_t     q[3];
    wa_link_t    *peer;
    redisReply   *phone, *waba, *r[3];
    const char   *prefix;

    snprintf(key[0], sizeof(key[0]), "%s:phone:%s", s->part->prefix,
             j->out.phone_number_id);
    wa_args(&q[0], "HMGET", key[0], "waba_id", "display_phone_number",
            NULL);

    phone = wa_link_call(&s->link, &q[0]);
    if (phone == NULL) {
        return -1;
    }

    keep[0] = phone;
    waba = phone->type == REDIS_REPLY_ARRAY && phone->elements == 2
           && phone->element[0]->type == REDIS_REPLY_STRING
           ? phone->element[0] : NULL;

    if (waba == NULL) {
        /* a number never seen: nothing known of its WABA, as one Redis */
        wa_args_add(a, "1");
        wa_args_add(a, "");
        wa_args_add(a, "");
        wa_args_add(a, "");
        wa_args_add(a, "");
        return 0;
    }

    p = wa_partition_of(waba->str, waba->len, (unsigned) s->o->partitions);

    peer = wa_peer_lock(p, &prefix, s->stop);
    if (peer == NULL) {
        return -1;
    }

    snprintf(key[0], sizeof(key[0]), "%s:template:%s:%s:%s", prefix,
             waba->str, wa_opt(j->out.template_name),
             j->out.language && *j->out.language ? j->out.language : "-");
    wa_args(&q[0], "HMGET", key[0], "status", "paused_until", NULL);

    snprintf(key[1], sizeof(key[1]), "%s:waba:%s", prefix, waba->str);
    wa_args(&q[1], "HGET", key[1], "restricted", NULL);

    snprintf(key[2], sizeof(key[2]), "%s:number:%s", prefix,
             phone->element[1]->type == REDIS_REPLY_STRING
             ? phone->element[1]->str : "-");
    wa_args(&q[2], "HGET", key[2], "messaging_limit_users", NULL);

    /* pipelined: one round trip */
    for (i = 0; i < 3; i++) {
        if (wa_link_append(peer, &q[i]) != 0) {
            break;
        }
    }

    for (i = (i == 3) ? 0 : 3; i < 3; i++) {
        r[i] = wa_link_reply(peer);
        if (r[i] == NULL) {
            break;
        }
        keep[1 + i] = r[i];
    }

    if (i != 3) {
        wa_link_lost(peer);
        wa_peer_unlock(p);
        return -1;
    }

    wa_peer_unlock(p);

    wa_args_add(a, "1");
    wa_args_reply(a, r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 2
                     ? r[0]->element[0] : NULL);
    wa_args_reply(a, r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 2
                     ? r[0]->element[1] : NULL);
    wa_args_reply(a, r[1]);
    wa_args_reply(a, r[2]);

    return 0;
}


/* the governor's word on a job: its reply, or NULL when the link broke */
static redisReply *
wa_sender_govern(wa_sender_t *s, wa_job_t *j)
{
    int          i;
    char         pace[2][32];
    wa_args_t    a;
    redisReply  *r, *keep[4];
    const char  *type;

    type = j->out.type == WA_OUT_READ ? "read"
           : j->out.type == WA_OUT_TEMPLATE ? "template" : "message";

    wa_args(&a, "FCALL", "wa_govern_1", "0", s->part->prefix, NULL);
    wa_args_ll(&a, (long long) time(NULL));
    wa_args_add(&a, j->out.phone_number_id);
    wa_args_add(&a, wa_opt(wa_outbox_user(&j->out)));
    wa_args_add(&a, type);
    wa_args_add(&a, wa_opt(j->out.template_name));
    wa_args_add(&a, wa_opt(j->out.language));
    wa_args_add(&a, j->out.marketing ? "1" : "0");
    wa_args_add(&a, wa_opt(j->out.auto_reply));
    wa_args_ll(&a, s->o->window_margin);

    /* the number's pace and the pair limit, in ms (12.5 ms at 80/s) */
    snprintf(pace[0], sizeof(pace[0]), "%.3f", 1000.0 / s->o->rate);
    snprintf(pace[1], sizeof(pace[1]), "%.3f", s->tolerance);
    wa_args_add(&a, pace[0]);
    wa_args_add(&a, pace[1]);
    wa_args_ll(&a, s->o->pair_interval_ms);
    wa_args_ll(&a, s->o->pair_interval_ms * (s->o->pair_burst - 1));
    wa_args_add(&a, s->o->messaging_limit);

    /* the portfolio's limit: the user reserved before the number's pace */
    if (j->out.type == WA_OUT_TEMPLATE
        && strcmp(s->o->messaging_limit, "portfolio") == 0)
    {
        if (wa_reach_reserve(s, j, &r) != 0) {
            return NULL;
        }

        if (r) {
            return r;
        }
    }

    r = NULL;
    memset(keep, 0, sizeof(keep));

    if (s->o->partitions == 1 || wa_sender_waba(s, j, &a, keep) == 0) {
        r = wa_link_call(&s->link, &a);
    }

    for (i = 0; i < 4; i++) {
        if (keep[i]) {
            freeReplyObject(keep[i]);
        }
    }

    return r;
}


/*
 * A job out of the queue, with the governor's verdict: refused, deferred
 * (the pair limit too), or started.  0, or -1 when the link is gone; the
 * job is freed unless it started.
 */
static int
wa_sender_decide(wa_sender_t *s, wa_job_t *j, redisReply *r, long long now)
{
    int        rc;
    long long  due;

    if (strcmp(r->element[0]->str, "refuse") == 0) {
        rc = wa_job_dead(s, j, "refused", r->element[1]->str, 0);
        goto done;
    }

    if (strcmp(r->element[0]->str, "defer") == 0) {
        due = (long long) r->element[2]->integer * 1000;

        /* asked again before a user's 24 h end: a raised limit sends it */
        if (strcmp(r->element[1]->str, "tier_limit") == 0
            && due > wa_clock_wall_ms() + s->o->tier_recheck_ms)
        {
            due = wa_clock_wall_ms() + s->o->tier_recheck_ms;
        }

        rc = wa_job_defer(s, j, due, r->element[1]->str);
        goto done;
    }

    /* the pair limit: a recipient waits in Redis, others go on */
    if (strcmp(r->element[0]->str, "pair") == 0) {
        rc = wa_job_defer(s, j, wa_clock_wall_ms() + r->element[1]->integer,
                          "pair_limit");
        goto done;
    }

    /* inside a window: not business-initiated, nothing to count */
    if (r->elements < 2) {
        wa_reach_end(s, j, 0);
    }

    wa_pace_take(&s->numbers, j->out.phone_number_id, now,
                 1000.0 / s->o->rate, s->tolerance);

    if (wa_job_start(s, j) != 0) {
        wa_job_free(j);
        return -1;
    }

    return 0;

done:

    wa_job_free(j);

    return rc;
}


/* governor, pacing, start: every ready job that may go now */
int
wa_sender_dispatch(wa_sender_t *s)
{
    int           rc;
    wa_job_t    **pj, *j;
    long long     now;
    redisReply   *r;

    for (pj = &s->ready; (j = *pj) != NULL; ) {

        if (s->http.inflight >= s->o->max_inflight || s->paused) {
            break;
        }

        now = wa_clock_ms();

        /*
         * the number's rate: wait here, others' numbers go on.  A loop
         * that comes late (a Redis round trip, a poll) may catch up: the
         * tolerance is half an interval, with a floor at high rates: a
         * second then stays close to the rate, which t/sender/s10
         * measures.
         */
        if (wa_pace_wait(&s->numbers, j->out.phone_number_id, now,
                         s->tolerance) > 0)
        {
            pj = &j->next;
            continue;
        }

        r = wa_sender_govern(s, j);
        if (r == NULL) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            wa_log(WA_LOG_ERROR, "sender: wa_govern_1: %s",
                   r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);

            /* "Function not found" after a FUNCTION FLUSH, most likely */
            wa_link_load_functions(&s->link);
            return s->link.c->err ? -1 : 0;
        }

        /*
         * another sender took the number's turn: it waits here, and so do
         * its jobs behind it (the copy's tolerance added, so that none of
         * them is asked about before this one: a number's jobs go in order)
         */
        if (strcmp(r->element[0]->str, "wait") == 0
            && r->elements > 1 && r->element[1]->type == REDIS_REPLY_INTEGER)
        {
            wa_pace_hold(&s->numbers, j->out.phone_number_id,
                         now + r->element[1]->integer
                         + (long long) s->tolerance + 1);
            freeReplyObject(r);
            pj = &j->next;
            continue;
        }

        /* out of the queue from here on */
        *pj = j->next;
        if (*pj == NULL) {
            s->ready_tail = pj;
        }
        j->next = NULL;
        s->nready--;

        rc = wa_sender_decide(s, j, r, now);
        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }
    }

    return 0;
}
