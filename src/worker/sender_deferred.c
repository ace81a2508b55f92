/*
 * wa-relayd: the sender's deferred set: <prefix>:deferred, a sorted set by
 * due time, with each entry's fields in <prefix>:deferred:entries.  An
 * entry goes there when it must wait longer than pacing allows; it is
 * taken back with a lease once due (a sender that dies leaves it due
 * again), and leaves in the MULTI that puts it in its next place.
 */

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "sender.h"


/* one entry due: its fields, and a lease on it; 1, 0 if gone, -1 */
static int
deferred_claim(wa_sender_t *s, redisReply *id, wa_due_t *due)
{
    json_t       *f;
    wa_args_t     a;
    redisReply   *e;
    json_error_t  jerr;

    wa_args(&a, "HGET", s->entries, id->str, NULL);
    e = wa_link_call(&s->link, &a);
    if (e == NULL) {
        return -1;
    }

    if (e->type != REDIS_REPLY_STRING) {
        /* its fields are gone: nothing to send */
        freeReplyObject(e);
        wa_args(&a, "ZREM", s->deferred, id->str, NULL);
        e = wa_link_call(&s->link, &a);
        if (e) {
            freeReplyObject(e);
        }

        return 0;
    }

    f = json_loadb(e->str, e->len, 0, &jerr);
    freeReplyObject(e);

    if (f == NULL) {
        wa_log(WA_LOG_ERROR, "sender: %s in %s is not JSON: %s", id->str,
               s->entries, jerr.text);
        return -1;
    }

    wa_args(&a, "ZADD", s->deferred, "XX", NULL);
    wa_args_ll(&a, wa_clock_wall_ms() + WA_LEASE_MS);
    wa_args_add(&a, id->str);
    e = wa_link_call(&s->link, &a);
    if (e == NULL) {
        json_decref(f);
        return -1;
    }

    freeReplyObject(e);

    snprintf(due->id, sizeof(due->id), "%s", id->str);
    due->fields = f;

    return 1;
}


/*
 * Deferred entries now due, up to max, claimed with a lease (if this
 * sender dies, each comes due again): their ids and fields into due[],
 * the fields the caller's.  How many, or -1 when the link is gone.
 */
long
wa_deferred_take(wa_sender_t *s, wa_due_t *due, long max)
{
    long          n;
    size_t        i;
    wa_args_t     a;
    redisReply   *r;

    wa_args(&a, "ZRANGEBYSCORE", s->deferred, "-inf", NULL);
    wa_args_ll(&a, wa_clock_wall_ms());
    wa_args_add(&a, "LIMIT");
    wa_args_add(&a, "0");
    wa_args_ll(&a, max);

    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    n = 0;

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        switch (deferred_claim(s, r->element[i], &due[n])) {

        case 1:
            n++;
            break;

        case 0:
            break;

        default:
            while (n > 0) {
                json_decref(due[--n].fields);
            }

            freeReplyObject(r);
            return -1;
        }
    }

    freeReplyObject(r);

    return n;
}


/* the fields plus what the sender keeps: attempts */
static char *
job_dump(wa_job_t *j, const char *why)
{
    char  attempts[32];

    snprintf(attempts, sizeof(attempts), "%ld", j->attempts);
    json_object_set_new(j->fields, "_attempts", json_string(attempts));
    json_object_set_new(j->fields, "_reason", json_string(why));

    return json_dumps(j->fields, JSON_COMPACT);
}

/* the entry leaves its current place: the group, or the deferred set */
int
wa_deferred_leave(wa_sender_t *s, wa_job_t *j)
{
    wa_args_t  a;

    if (j->pending) {
        wa_args(&a, "XACK", s->outbox, s->o->group, j->id, NULL);

    } else {
        wa_args(&a, "ZREM", s->deferred, j->id, NULL);
    }

    wa_sender_queue(s, &a);

    wa_args(&a, "HDEL", s->entries, j->id, NULL);
    wa_sender_queue(s, &a);

    return 2;
}

int
wa_job_defer(wa_sender_t *s, wa_job_t *j, long long due_ms, const char *why)
{
    int        n;
    char      *dump;
    wa_args_t  a;

    wa_reach_end(s, j, 0);

    dump = job_dump(j, why);
    if (dump == NULL) {
        return -1;
    }

    wa_sender_multi(s);
    wa_args(&a, "HSET", s->entries, j->id, dump, NULL);
    wa_sender_queue(s, &a);
    wa_args(&a, "ZADD", s->deferred, NULL);
    wa_args_ll(&a, due_ms);
    wa_args_add(&a, j->id);
    wa_sender_queue(s, &a);
    n = 3;

    if (j->pending) {
        wa_args(&a, "XACK", s->outbox, s->o->group, j->id, NULL);
        wa_sender_queue(s, &a);
        n++;
    }

    free(dump);

    wa_log(WA_LOG_DEBUG, "sender: %s deferred %lld ms: %s", j->id,
            due_ms - wa_clock_wall_ms(), why);
    s->n.deferred++;
    wa_sender_count("deferred", why);

    return wa_sender_exec(s, n);
}

/* a lease given back on a clean stop: sent at once after a restart */
void
wa_deferred_give_back(wa_sender_t *s, wa_job_t *j)
{
    wa_args_t    a;
    redisReply  *r;

    if (j->pending || s->link.c == NULL || s->link.c->err) {
        return;
    }

    wa_args(&a, "ZADD", s->deferred, "XX", NULL);
    wa_args_ll(&a, wa_clock_wall_ms());
    wa_args_add(&a, j->id);
    r = wa_link_call(&s->link, &a);
    if (r) {
        freeReplyObject(r);
    }
}
