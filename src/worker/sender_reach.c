/*
 * wa-relayd: the sender's side of the messaging limit of a business
 * portfolio (--messaging-limit portfolio, portfolio.h).  Before the
 * governor's call of a template, its user is reserved in the portfolio's
 * reach, in the portfolio's partition, against the portfolio's limit:
 * the latest its WABAs' events gave, read from their partitions.  The
 * governor then says whether the message is business-initiated; the hold
 * is confirmed when the message is sent, and released when it is not
 * (refused, deferred, in a window, failed for good).  A reservation is the
 * outbox entry's: asked again, it counts nothing more.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "peer.h"
#include "portfolio.h"
#include "sender.h"


/* a link in the partition of id, and its prefix (peer.h) */
static wa_link_t *
reach_link(wa_sender_t *s, const char *id, const char **prefix)
{
    return wa_peer_of(id, &s->link, s->part->prefix, prefix,
                      s->stop);
}


/* one command on a key of id's partition: its reply, NULL if none */
static redisReply *
reach_read(wa_sender_t *s, const char *kind, const char *id, wa_args_t *a,
    int keyarg)
{
    char         key[512];
    wa_link_t   *l;
    redisReply  *r;
    const char  *prefix;

    l = reach_link(s, id, &prefix);
    if (l == NULL) {
        return NULL;
    }

    snprintf(key, sizeof(key), "%s:%s:%s", prefix, kind, id);
    a->argv[keyarg] = key;
    a->lens[keyarg] = strlen(key);

    r = wa_link_call(l, a);
    wa_peer_done(l, &s->link);

    return r;
}


/* a string element of an array reply, or "" */
static const char *
elem(const redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements
           && r->element[i]->type == REDIS_REPLY_STRING
           ? r->element[i]->str : "";
}


typedef struct {
    char         users[32];
    char         tier[32];
    long long    at;
    int          known;
    int          restricted;    /* the number's WABA */
} reach_limit_t;


/* a WABA's limit, if later than what *lim holds; the WABA's portfolio */
static int
reach_waba(wa_sender_t *s, const char *waba, reach_limit_t *lim,
    char *portfolio)
{
    wa_args_t    a;
    redisReply  *r;
    long long    at;

    wa_args(&a, "HMGET", "", "portfolio", "limit_users", "limit_tier",
            "limit_at", "restricted", NULL);
    r = reach_read(s, "waba", waba, &a, 1);
    if (r == NULL) {
        return -1;
    }

    /* the number's own WABA */
    if (portfolio) {
        snprintf(portfolio, WA_PORTFOLIO_ID_MAX, "%s",
                 *elem(r, 0) ? elem(r, 0) : waba);
        lim->restricted = strcmp(elem(r, 4), "1") == 0;
    }

    at = atoll(elem(r, 3));

    if (*elem(r, 1) && (!lim->known || at >= lim->at)) {
        snprintf(lim->users, sizeof(lim->users), "%s", elem(r, 1));
        snprintf(lim->tier, sizeof(lim->tier), "%s", elem(r, 2));
        lim->at = at;
        lim->known = 1;
    }

    freeReplyObject(r);

    return 0;
}


/* the limit of j's portfolio: the latest of its WABAs'; 1 if no WABA */
static int
reach_limit(wa_sender_t *s, wa_job_t *j, reach_limit_t *lim)
{
    int          rc;
    char         waba[WA_PORTFOLIO_ID_MAX], key[512], *p, *next;
    wa_args_t    a;
    redisReply  *r;

    memset(lim, 0, sizeof(*lim));

    snprintf(key, sizeof(key), "%s:phone:%s", s->part->prefix,
             j->out.phone_number_id);
    wa_args(&a, "HGET", key, "waba_id", NULL);
    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    rc = r->type == REDIS_REPLY_STRING && r->len < sizeof(waba);
    if (rc) {
        memcpy(waba, r->str, r->len + 1);
    }

    freeReplyObject(r);

    if (!rc) {
        return 1;               /* a number never seen: Meta decides */
    }

    if (reach_waba(s, waba, lim, j->portfolio) != 0) {
        return -1;
    }

    if (strcmp(j->portfolio, waba) == 0) {
        return 0;
    }

    /* a portfolio of several WABAs (--portfolio): each one's limit */
    wa_args(&a, "HGET", "", "wabas", NULL);
    r = reach_read(s, "portfolio", j->portfolio, &a, 1);
    if (r == NULL) {
        return -1;
    }

    for (p = r->type == REDIS_REPLY_STRING ? r->str : NULL; p; p = next) {
        next = strchr(p, ',');
        if (next) {
            *next++ = '\0';
        }

        if (*p && strcmp(p, waba) != 0
            && reach_waba(s, p, lim, NULL) != 0)
        {
            freeReplyObject(r);
            return -1;
        }
    }

    freeReplyObject(r);

    return 0;
}


/* FCALL wa_reach_1 in the portfolio's partition: its prefix as argv[3] */
static redisReply *
reach_call(wa_sender_t *s, wa_job_t *j, wa_args_t *a)
{
    wa_link_t   *l;
    redisReply  *r;
    const char  *prefix;

    l = reach_link(s, j->portfolio, &prefix);
    if (l == NULL) {
        return NULL;
    }

    a->argv[3] = prefix;
    a->lens[3] = strlen(prefix);

    r = wa_link_call(l, a);

    /* that partition's Redis lost its functions (FUNCTION FLUSH, ...) */
    if (r && wa_link_not_loaded(r)) {
        freeReplyObject(r);
        r = wa_link_load_functions(l) == 0 ? wa_link_call(l, a) : NULL;
    }

    wa_peer_done(l, &s->link);

    return r;
}


int
wa_reach_reserve(wa_sender_t *s, wa_job_t *j, redisReply **defer)
{
    int             rc;
    wa_args_t       a;
    redisReply     *r;
    reach_limit_t   lim;

    *defer = NULL;

    rc = reach_limit(s, j, &lim);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }

    wa_args(&a, "FCALL", "wa_reach_1", "0", "", "reserve", j->portfolio,
            wa_opt(wa_outbox_user(&j->out)), j->id, NULL);
    wa_args_ll(&a, (long long) time(NULL));
    wa_args_add(&a, lim.users);
    wa_args_add(&a, lim.tier);
    wa_args_add(&a, j->out.phone_number_id);
    wa_args_add(&a, lim.restricted ? "1" : "0");

    r = reach_call(s, j, &a);
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        wa_log(WA_LOG_ERROR, "sender: wa_reach_1: %s",
               r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject(r);
        return -1;
    }

    if (strcmp(r->element[0]->str, "defer") == 0) {
        *defer = r;
        return 0;
    }

    /* held by this entry, or reached already (counted once) */
    if (j->reach != 1) {
        j->reach = r->element[1]->integer == 1 ? 1 : 2;
    }

    freeReplyObject(r);

    return 0;
}


void
wa_reach_end(wa_sender_t *s, wa_job_t *j, int sent)
{
    wa_args_t    a;
    redisReply  *r;

    if (j->reach == 0 || (!sent && j->reach != 1)) {
        return;
    }

    wa_args(&a, "FCALL", "wa_reach_1", "0", "", sent ? "confirm" : "release",
            j->portfolio, wa_opt(wa_outbox_user(&j->out)), j->id, NULL);
    wa_args_ll(&a, (long long) time(NULL));

    r = reach_call(s, j, &a);
    if (r) {
        freeReplyObject(r);
    }

    /* not done (a link down): the hold ends by itself (HELD_MAX) */
    j->reach = 0;
}
