/*
 * wa-relayd: what may go now.  Deferred entries that have come due are
 * taken back with a lease; each ready job asks the governor (wa_govern_1
 * in redis/wa_state.lua), then waits for its number's pace and its
 * recipient's pair limit before it starts.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "sender.h"


/* deferred entries now due: claimed with a lease, then into the queue */
int
wa_sender_take_due(wa_sender_t *s)
{
    size_t        i;
    long          room;
    json_t       *f;
    wa_args_t     a;
    redisReply   *r, *e;
    json_error_t  jerr;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    wa_args(&a, "ZRANGEBYSCORE", s->deferred, "-inf", NULL);
    wa_args_ll(&a, wa_clock_wall_ms());
    wa_args_add(&a, "LIMIT");
    wa_args_add(&a, "0");
    wa_args_ll(&a, room);

    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        wa_args(&a, "HGET", s->entries, r->element[i]->str, NULL);
        e = wa_link_call(&s->link, &a);
        if (e == NULL) {
            freeReplyObject(r);
            return -1;
        }

        if (e->type != REDIS_REPLY_STRING) {
            /* its fields are gone: nothing to send */
            freeReplyObject(e);
            wa_args(&a, "ZREM", s->deferred, r->element[i]->str, NULL);
            e = wa_link_call(&s->link, &a);
            if (e) {
                freeReplyObject(e);
            }
            continue;
        }

        f = json_loadb(e->str, e->len, 0, &jerr);
        freeReplyObject(e);

        /* a lease: if this sender dies, the entry comes due again */
        wa_args(&a, "ZADD", s->deferred, "XX", NULL);
        wa_args_ll(&a, wa_clock_wall_ms() + LEASE_MS);
        wa_args_add(&a, r->element[i]->str);
        e = wa_link_call(&s->link, &a);
        if (e == NULL) {
            json_decref(f);
            freeReplyObject(r);
            return -1;
        }

        freeReplyObject(e);

        if (f == NULL || wa_job_add(s, r->element[i]->str, f, 0) != 0) {
            freeReplyObject(r);
            return -1;
        }
    }

    freeReplyObject(r);

    return 0;
}

/* the governor's word on a job: its reply, or NULL when the link broke */
static redisReply *
wa_sender_govern(wa_sender_t *s, job_t *j)
{
    wa_args_t    a;
    const char  *type;

    type = j->out.type == WA_OUT_READ ? "read"
           : j->out.type == WA_OUT_TEMPLATE ? "template" : "message";

    wa_args(&a, "FCALL", "wa_govern_1", "0", s->o->prefix, NULL);
    wa_args_ll(&a, (long long) time(NULL));
    wa_args_add(&a, j->out.phone_number_id);
    wa_args_add(&a, opt(wa_outbox_user(&j->out)));
    wa_args_add(&a, type);
    wa_args_add(&a, opt(j->out.template_name));
    wa_args_add(&a, opt(j->out.language));
    wa_args_add(&a, j->out.marketing ? "1" : "0");
    wa_args_add(&a, opt(j->out.auto_reply));
    wa_args_ll(&a, s->o->window_margin);

    return wa_link_call(&s->link, &a);
}


/*
 * A job out of the queue, with the governor's verdict: refused, deferred,
 * held for its recipient's pair limit, or started.  0, or -1 when the link
 * is gone; the job is freed unless it started.
 */
static int
wa_sender_decide(wa_sender_t *s, job_t *j, redisReply *r, long long now,
    double tolerance)
{
    int          rc;
    long long    wait;
    const char  *user;

    if (strcmp(r->element[0]->str, "refuse") == 0) {
        rc = wa_job_dead(s, j, "refused", r->element[1]->str, 0);
        goto done;
    }

    if (strcmp(r->element[0]->str, "defer") == 0) {
        rc = wa_job_defer(s, j, (long long) r->element[2]->integer * 1000,
                          r->element[1]->str);
        goto done;
    }

    /* the pair limit: a recipient waits in Redis, others go on */
    user = wa_outbox_user(&j->out);
    wait = 0;

    if (j->out.type != WA_OUT_READ && user && s->o->pair_interval_ms) {
        wait = wa_pace_take(&s->pairs, user, now,
                            (double) s->o->pair_interval_ms,
                            (double) s->o->pair_interval_ms
                            * (s->o->pair_burst - 1));
    }

    if (wait > 0) {
        rc = wa_job_defer(s, j, wa_clock_wall_ms() + wait, "pair_limit");
        goto done;
    }

    wa_pace_take(&s->numbers, j->out.phone_number_id, now,
                 1000.0 / s->o->rate, tolerance);

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
    job_t       **pj, *j;
    double        tolerance;
    long long     now;
    redisReply   *r;

    tolerance = 500.0 / s->o->rate;
    if (tolerance < 5.0 && s->o->rate > 200) {
        tolerance = 5.0;
    }

    for (pj = &s->ready; (j = *pj) != NULL; ) {

        if (s->inflight >= s->o->max_inflight || s->paused) {
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
                         tolerance) > 0)
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

        /* out of the queue from here on */
        *pj = j->next;
        if (*pj == NULL) {
            s->ready_tail = pj;
        }
        j->next = NULL;
        s->nready--;

        rc = wa_sender_decide(s, j, r, now, tolerance);
        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }
    }

    return 0;
}
