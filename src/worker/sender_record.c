/*
 * wa-relayd: what the sender records of an entry: in Redis, in one
 * MULTI ... EXEC with the entry leaving its place, and in the counters.
 */

#include <stdio.h>

#include "counters.h"
#include "log.h"
#include "sender.h"


/* what became of an entry, in the metrics: outcome and the reason's word */
void
wa_sender_count(const char *outcome, const char *why)
{
    char  reason[64];

    wa_counters_reason(why, reason, sizeof(reason));
    wa_counters_add(WA_FAM_SENDER, outcome, reason, 1);
}


/* run the queued commands of a MULTI ... EXEC; -1 if the link is gone */
static int
exec_replies(wa_sender_t *s, int n)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < n; i++) {
        r = wa_link_reply(&s->link);
        if (r == NULL) {
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            /* a runtime error inside the MULTI: Redis ran the others */
            wa_log(WA_LOG_ERROR, "sender: Redis: %s", r->str);
        }

        freeReplyObject(r);
    }

    return 0;
}

/* a command queued in a MULTI: an error shows in exec_replies */
void
wa_sender_queue(wa_sender_t *s, wa_args_t *a)
{
    (void) wa_link_append(&s->link, a);
}

void
wa_sender_multi(wa_sender_t *s)
{
    wa_args_t  a;

    wa_args(&a, "MULTI", NULL);
    wa_sender_queue(s, &a);
}

/* EXEC, and the replies of the n commands queued before it */
int
wa_sender_exec(wa_sender_t *s, int n)
{
    wa_args_t  a;

    wa_args(&a, "EXEC", NULL);
    wa_sender_queue(s, &a);

    return exec_replies(s, n + 1);
}

/* <prefix>:idem:<key> */
void
wa_sender_idem_key(wa_sender_t *s, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "%s:idem:%s", s->part->prefix, key);
}


/*
 * Meta's 130429: the number is over its throughput.  Held in Redis for
 * wait ms (wa_hold_1), so that every wa-relayd sending for it waits too,
 * not only this one; a failure is logged, the local hold still stands.
 */
int
wa_sender_hold(wa_sender_t *s, const char *number, long long wait)
{
    char         tolerance[32];
    wa_args_t    a;
    redisReply  *r;

    snprintf(tolerance, sizeof(tolerance), "%.3f", s->tolerance);
    wa_args(&a, "FCALL", "wa_hold_1", "0", s->part->prefix, number, NULL);
    wa_args_ll(&a, wait);
    wa_args_add(&a, tolerance);

    r = wa_link_call(&s->link, &a);

    if (r && wa_link_not_loaded(r)) {
        /* a Redis restarted without its functions: loaded, asked again */
        freeReplyObject(r);
        r = wa_link_load_functions(&s->link) == 0
            ? wa_link_call(&s->link, &a) : NULL;
    }

    if (r == NULL) {
        return -1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        wa_log(WA_LOG_ERROR, "sender: the hold of %s not kept in Redis: %s",
               number, r->str);
    }

    freeReplyObject(r);

    return 0;
}

