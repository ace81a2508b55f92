/*
 * wa-relayd: the stream reader (see reader.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "reader.h"
#include "wa_streams.h"


void
wa_reader_init(wa_reader_t *rd, wa_link_t *link, const char *prefix,
    const char *dead)
{
    memset(rd, 0, sizeof(wa_reader_t));
    rd->link = link;
    rd->o = link->o;
    rd->prefix = prefix;
    rd->dead = dead;
    rd->group = link->o->group;
    rd->group_from = "0";
}


/* a group other than --group (the media fetcher's), made at "from" */
void
wa_reader_group(wa_reader_t *rd, const char *group, const char *from)
{
    rd->group = group;
    rd->group_from = from;
}


void
wa_reader_add(wa_reader_t *rd, const char *stream)
{
    if (rd->nstreams == WA_READER_MAX) {
        abort();
    }

    rd->stream[rd->nstreams++] = stream;
}


int
wa_reader_groups(wa_reader_t *rd)
{
    int          i;
    wa_args_t    a;
    redisReply  *r;

    for (i = 0; i < rd->nstreams; i++) {
        /* from 0: a new group reads what is already in the stream */
        wa_args(&a, "XGROUP", "CREATE", rd->stream[i], rd->group,
                rd->group_from, "MKSTREAM", NULL);

        r = wa_link_call(rd->link, &a);
        if (r == NULL) {
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            if (strncmp(r->str, "BUSYGROUP", 9) != 0) {
                wa_log(WA_LOG_ERROR, "%sRedis XGROUP CREATE %s: %s",
                       rd->link->who, rd->stream[i], r->str);
                freeReplyObject(r);
                return -1;
            }

        } else {
            wa_log(WA_LOG_INFO, "%screated group %s on %s", rd->link->who,
                   rd->group, rd->stream[i]);
        }

        freeReplyObject(r);
    }

    return 0;
}


int
wa_reader_append(wa_reader_t *rd, const char *from, long count,
    long block_ms)
{
    int        i;
    wa_args_t  a;

    wa_args(&a, "XREADGROUP", "GROUP", rd->group, rd->o->consumer,
            "COUNT", NULL);
    wa_args_ll(&a, count);

    if (block_ms) {
        wa_args_add(&a, "BLOCK");
        wa_args_ll(&a, block_ms);
    }

    wa_args_add(&a, "STREAMS");

    for (i = 0; i < rd->nstreams; i++) {
        wa_args_add(&a, rd->stream[i]);
    }

    for (i = 0; i < rd->nstreams; i++) {
        wa_args_add(&a, from);
    }

    return wa_link_append(rd->link, &a);
}


static int
wa_reader_nogroup(wa_reader_t *rd, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        /* the group was lost (a Redis restart without persistence) */
        wa_log(WA_LOG_WARN, "%s%s: creating the groups again", rd->link->who,
               r->str);
        return 1;
    }

    return 0;
}


int
wa_reader_check(wa_reader_t *rd, redisReply **r)
{
    if (wa_reader_nogroup(rd, *r)) {
        freeReplyObject(*r);
        *r = NULL;
        return 1;
    }

    if ((*r)->type == REDIS_REPLY_ERROR) {
        wa_log(WA_LOG_ERROR, "%sRedis XREADGROUP: %s", rd->link->who,
               (*r)->str);
    }

    if ((*r)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*r);
        *r = NULL;
    }

    return 0;
}


int
wa_reader_read(wa_reader_t *rd, const char *from, long count,
    long block_ms, redisReply **r)
{
    *r = NULL;

    if (wa_reader_append(rd, from, count, block_ms) != 0) {
        return -1;
    }

    *r = wa_link_reply(rd->link);
    if (*r == NULL) {
        return -1;
    }

    if (wa_reader_check(rd, r) == 1) {
        return wa_reader_groups(rd);
    }

    return 0;
}


redisReply *
wa_reader_entries(wa_reader_t *rd, redisReply *r, int s)
{
    size_t       i;
    redisReply  *k;

    for (i = 0; r && i < r->elements; i++) {
        k = r->element[i];

        if (k->type == REDIS_REPLY_ARRAY && k->elements == 2
            && k->element[0]->type == REDIS_REPLY_STRING
            && k->element[1]->type == REDIS_REPLY_ARRAY
            && strcmp(k->element[0]->str, rd->stream[s]) == 0)
        {
            return k->element[1];
        }
    }

    return NULL;
}


int
wa_reader_valid(const redisReply *e)
{
    size_t  i;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2
        || e->element[0]->type != REDIS_REPLY_STRING
        || e->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return 0;
    }

    for (i = 0; i < e->element[1]->elements; i++) {
        if (e->element[1]->element[i]->type != REDIS_REPLY_STRING) {
            return 0;
        }
    }

    return 1;
}


/*
 * An entry delivered too often goes to the dead-letter stream with its
 * fields, and leaves the group, in one MULTI.
 */
static int
wa_reader_bury(wa_reader_t *rd, int s, redisReply *e, long long deliveries)
{
    int           i;
    size_t        m, k, argc, *lens;
    const char  **argv;
    wa_args_t     a;
    redisReply   *r, *f;
    wa_link_t    *l;

    l = rd->link;

    wa_args(&a, "XADD", rd->dead, "*", WA_FIELD_V, WA_EVENTS_V, "stream",
            rd->stream[s], "id", NULL);
    wa_args_addn(&a, e->element[0]->str, e->element[0]->len);
    wa_args_add(&a, "reason");
    wa_args_add(&a, "delivered too many times without being handled");
    wa_args_add(&a, "deliveries");
    wa_args_ll(&a, deliveries);

    /* the fields follow: more than a wa_args_t holds */
    argc = (size_t) a.argc + e->element[1]->elements;
    argv = malloc(argc * sizeof(char *));
    lens = malloc(argc * sizeof(size_t));

    if (argv == NULL || lens == NULL) {
        wa_log(WA_LOG_ERROR, "out of memory");
        exit(1);
    }

    memcpy(argv, a.argv, a.argc * sizeof(char *));
    memcpy(lens, a.lens, a.argc * sizeof(size_t));

    /* the entry's own version gives way to the dead letter's */
    for (m = 0, k = a.argc; m + 1 < e->element[1]->elements; m += 2) {
        f = e->element[1]->element[m];

        if (f->len == sizeof(WA_FIELD_V) - 1
            && memcmp(f->str, WA_FIELD_V, f->len) == 0)
        {
            continue;
        }

        argv[k] = f->str;
        lens[k++] = f->len;
        argv[k] = e->element[1]->element[m + 1]->str;
        lens[k++] = e->element[1]->element[m + 1]->len;
    }

    argc = k;

    wa_args(&a, "MULTI", NULL);
    i = wa_link_append(l, &a);
    i |= wa_link_appendv(l, (int) argc, argv, lens);
    wa_args(&a, "XACK", rd->stream[s], rd->group, NULL);
    wa_args_addn(&a, e->element[0]->str, e->element[0]->len);
    i |= wa_link_append(l, &a);
    wa_args(&a, "EXEC", NULL);
    i |= wa_link_append(l, &a);

    free(argv);
    free(lens);

    if (i != 0) {
        return -1;
    }

    for (i = 0; i < 4; i++) {
        r = wa_link_reply(l);
        if (r == NULL) {
            return -1;
        }

        freeReplyObject(r);
    }

    wa_log(WA_LOG_ERROR, "%sentry %s of %s delivered %lld times, moved to %s",
           l->who, e->element[0]->str, rd->stream[s], deliveries, rd->dead);
    rd->n.dead++;
    wa_counters_add(WA_FAM_ENTRIES, rd->stream[s], "dead", 1);

    return 0;
}


/* how often the entry id was delivered, from an XPENDING reply */
static long long
wa_reader_deliveries(redisReply *pending, const redisReply *id)
{
    size_t       i;
    redisReply  *p;

    for (i = 0; pending && i < pending->elements; i++) {
        p = pending->element[i];

        if (p->type == REDIS_REPLY_ARRAY && p->elements == 4
            && p->element[0]->len == id->len
            && memcmp(p->element[0]->str, id->str, id->len) == 0)
        {
            return p->element[3]->integer;
        }
    }

    return 0;
}


/* XPENDING of the entries just claimed: how often each was delivered */
static redisReply *
wa_reader_pending(wa_reader_t *rd, int s, redisReply *entries)
{
    wa_args_t    a;
    redisReply  *first, *last;

    first = entries->element[0]->element[0];
    last = entries->element[entries->elements - 1]->element[0];

    wa_args(&a, "XPENDING", rd->stream[s], rd->group, NULL);
    wa_args_addn(&a, first->str, first->len);
    wa_args_addn(&a, last->str, last->len);
    wa_args_ll(&a, (long long) entries->elements);
    wa_args_add(&a, rd->o->consumer);

    return wa_link_call(rd->link, &a);
}


/* one XAUTOCLAIM's entries: buried or taken; -1 when the link is gone */
static int
wa_reader_claimed(wa_reader_t *rd, int s, redisReply *entries,
    wa_reader_take_pt take, void *data)
{
    int           rc;
    size_t        i, n, keep;
    long long     times;
    redisReply   *pending, *e, **keepv;

    n = entries->elements;

    pending = wa_reader_pending(rd, s, entries);
    if (pending == NULL) {
        return -1;
    }

    wa_log(WA_LOG_WARN, "%sreclaimed %zu entries of %s idle over %ld ms",
           rd->link->who, n, rd->stream[s], rd->o->claim_idle_ms);
    rd->n.reclaimed += n;
    wa_counters_add(WA_FAM_ENTRIES, rd->stream[s], "reclaimed", (long long) n);

    keepv = malloc(n * sizeof(redisReply *));
    if (keepv == NULL) {
        wa_log(WA_LOG_ERROR, "out of memory");
        exit(1);
    }

    rc = 0;

    for (i = 0, keep = 0; i < n && rc == 0; i++) {
        e = entries->element[i];

        if (!wa_reader_valid(e)) {
            continue;
        }

        times = wa_reader_deliveries(pending, e->element[0]);

        if (times > rd->o->max_deliveries) {
            rc = wa_reader_bury(rd, s, e, times);
            continue;
        }

        keepv[keep++] = e;
    }

    freeReplyObject(pending);

    if (rc == 0 && keep) {
        rc = take(data, s, keepv, keep);
    }

    free(keepv);

    return rc;
}


int
wa_reader_claim(wa_reader_t *rd, int s, long count, int rounds,
    wa_reader_take_pt take, void *data)
{
    int          rc;
    char         cursor[64];
    wa_args_t    a;
    redisReply  *r;

    snprintf(cursor, sizeof(cursor), "0-0");

    /* bounded, so that new entries are not starved */
    while (rounds-- > 0) {
        wa_args(&a, "XAUTOCLAIM", rd->stream[s], rd->group,
                rd->o->consumer, NULL);
        wa_args_ll(&a, rd->o->claim_idle_ms);
        wa_args_add(&a, cursor);
        wa_args_add(&a, "COUNT");
        wa_args_ll(&a, count);

        r = wa_link_call(rd->link, &a);
        if (r == NULL) {
            return -1;
        }

        if (wa_reader_nogroup(rd, r)) {
            freeReplyObject(r);
            return wa_reader_groups(rd);
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            wa_log(WA_LOG_ERROR, "%sRedis XAUTOCLAIM %s: %s", rd->link->who,
                   rd->stream[s],
                   r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);
            return 0;
        }

        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);

        rc = 0;
        if (r->element[1]->elements) {
            rc = wa_reader_claimed(rd, s, r->element[1], take, data);
        }

        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }

        if (strcmp(cursor, "0-0") == 0) {
            break;
        }
    }

    return 0;
}
