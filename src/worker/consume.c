/*
 * wa-relayd: reading the streams in a consumer group.
 *
 * Entries are read with XREADGROUP and applied in batches by the Redis
 * function wa_apply_1 (redis/wa_state.lua), which acknowledges each entry
 * in the same atomic call.  Entries left pending by a worker that died are
 * reclaimed with XAUTOCLAIM once idle long enough; one delivered more than
 * --max-deliveries times goes to <prefix>:dead instead.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "worker.h"

const char *stream_names[NSTREAMS] = { "messages", "statuses", "account" };


int
consume_groups(worker_t *w)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < NSTREAMS; i++) {
        /* from 0: a new group reads what is already in the stream */
        r = redisCommand(w->c, "XGROUP CREATE %s %s 0 MKSTREAM",
                         w->stream[i], w->o->group);
        if (r == NULL) {
            log_msg(LOG_ERROR, "Redis XGROUP CREATE: %s", w->c->errstr);
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            if (strncmp(r->str, "BUSYGROUP", 9) != 0) {
                log_msg(LOG_ERROR, "Redis XGROUP CREATE %s: %s",
                        w->stream[i], r->str);
                freeReplyObject(r);
                return -1;
            }

        } else {
            log_msg(LOG_INFO, "created group %s on %s", w->o->group,
                    w->stream[i]);
        }

        freeReplyObject(r);
    }

    return 0;
}


/* a string of a reply is lit, compared with its length: it may hold NULs */
#define reply_is(r, lit)                                                      \
    ((r)->len == sizeof(lit) - 1 && memcmp((r)->str, lit, (r)->len) == 0)


/* "message" entries whose text is a keyword carry keyword=optout|optin */
static const char *
keyword(worker_t *w, redisReply *fields)
{
    size_t       i;
    redisReply  *text;
    int          message;

    message = 0;
    text = NULL;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (reply_is(fields->element[i], "kind")) {
            message = reply_is(fields->element[i + 1], "message");

        } else if (reply_is(fields->element[i], "text")) {
            text = fields->element[i + 1];
        }
    }

    if (!message || text == NULL || text->type != REDIS_REPLY_STRING) {
        return NULL;
    }

    if (wa_keywords_match(&w->o->optout, text->str, text->len)) {
        return "optout";
    }

    if (wa_keywords_match(&w->o->optin, text->str, text->len)) {
        return "optin";
    }

    return NULL;
}


static int
valid_entry(redisReply *e)
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


/* a field the state functions never read (redis/wa_state.lua) */
static int
left_out(redisReply *name)
{
    static const struct {
        const char  *str;
        size_t       len;
    } names[] = {
        { "raw", sizeof("raw") - 1 },
        { "field", sizeof("field") - 1 },
        { "received_at", sizeof("received_at") - 1 },
    };

    size_t  i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (name->len == names[i].len
            && memcmp(name->str, names[i].str, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The FCALL wa_apply_1 of entries of stream s, formatted: it holds copies
 * of the values, so the reply they came in can be freed at once.
 */
static void
prepare(worker_t *w, int s, redisReply **entries, size_t n, call_t *call)
{
    int           len;
    char          ttl[32], count[32], *nf, *cmd;
    size_t        i, j, k, m, argc, pairs, *lens;
    const char  **argv, *kw;
    redisReply   *e, *f;

    argc = 9;

    for (i = 0; i < n; i++) {
        argc += 4 + (valid_entry(entries[i])
                     ? entries[i]->element[1]->elements : 0);
    }

    argv = malloc(argc * sizeof(char *));
    lens = malloc(argc * sizeof(size_t));
    nf = malloc(n * 24);

    if (argv == NULL || lens == NULL || nf == NULL) {
        log_msg(LOG_ERROR, "out of memory");
        exit(1);
    }

    snprintf(ttl, sizeof(ttl), "%ld", w->o->seen_ttl);

    k = 0;
    argv[k++] = "FCALL";
    argv[k++] = "wa_apply_1";
    argv[k++] = "1";
    argv[k++] = w->stream[s];
    argv[k++] = w->o->prefix;
    argv[k++] = w->o->group;
    argv[k++] = ttl;
    argv[k++] = w->apply_options;
    argv[k++] = count;

    for (i = 0; i < k; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (i = 0, j = 0; i < n; i++) {
        e = entries[i];

        if (!valid_entry(e)) {
            continue;
        }

        f = e->element[1];
        kw = keyword(w, f);

        argv[k] = e->element[0]->str;
        lens[k++] = e->element[0]->len;
        pairs = k++;

        /*
         * Values are binary-safe: lengths come from the reply.  The fields
         * the rules never read stay behind (left_out): every argument costs
         * Redis a string in the function's Lua, and "raw" is most of an
         * entry's bytes; the function reads it from the stream if the entry
         * goes dead.
         */
        for (m = 0; m + 1 < f->elements; m += 2) {
            if (left_out(f->element[m])) {
                continue;
            }

            argv[k] = f->element[m]->str;
            lens[k++] = f->element[m]->len;
            argv[k] = f->element[m + 1]->str;
            lens[k++] = f->element[m + 1]->len;
        }

        if (kw) {
            argv[k] = "keyword";
            lens[k++] = 7;
            argv[k] = kw;
            lens[k++] = strlen(kw);
        }

        lens[pairs] = snprintf(nf + i * 24, 24, "%zu", (k - pairs - 1) / 2);
        argv[pairs] = nf + i * 24;

        j++;
    }

    lens[8] = snprintf(count, sizeof(count), "%zu", j);

    call->s = s;
    call->n = j;
    call->cmd = NULL;
    call->len = 0;

    if (j) {
        len = redisFormatCommandArgv(&cmd, (int) k, argv, lens);
        if (len < 0) {
            log_msg(LOG_ERROR, "out of memory");
            exit(1);
        }

        call->cmd = cmd;
        call->len = (size_t) len;
    }

    free(argv);
    free(lens);
    free(nf);
}


/* what hiredis holds for Redis is written, no reply read: -1 on error */
static int
write_out(worker_t *w)
{
    int  done;

    do {
        if (redisBufferWrite(w->c, &done) != REDIS_OK) {
            return -1;
        }
    } while (!done);

    return 0;
}


/* the calls go out, their replies are not waited for: -1 if the link broke */
static int
send_calls(worker_t *w, batch_t *b)
{
    int  i;

    for (i = 0; i < b->ncalls; i++) {
        if (redisAppendFormattedCommand(w->c, b->call[i].cmd, b->call[i].len)
            != REDIS_OK)
        {
            log_msg(LOG_ERROR, "Redis FCALL wa_apply_1: %s", w->c->errstr);
            return -1;
        }
    }

    if (write_out(w) != 0) {
        log_msg(LOG_ERROR, "Redis FCALL wa_apply_1: %s", w->c->errstr);
        return -1;
    }

    return 0;
}


static void
free_calls(batch_t *b)
{
    int  i;

    for (i = 0; i < b->ncalls; i++) {
        redisFreeCommand(b->call[i].cmd);
    }

    b->ncalls = 0;
}


static int
not_loaded(redisReply *r)
{
    /* FUNCTION FLUSH, or a Redis restarted without persistence */
    return r->type == REDIS_REPLY_ERROR
           && strstr(r->str, "Function not found") != NULL;
}


/* the replies of calls sent, in order; -1 if the connection is gone */
static int
finish_calls(worker_t *w, batch_t *b)
{
    int          i, n, loaded;
    call_t      *call;
    redisReply  *r[NSTREAMS];

    for (n = 0; n < b->ncalls; n++) {
        if (redisGetReply(w->c, (void **) &r[n]) != REDIS_OK) {
            log_msg(LOG_ERROR, "Redis FCALL wa_apply_1: %s", w->c->errstr);
            goto failed;
        }
    }

    /* every call sent found no function: load it, then each goes again */
    for (i = 0, loaded = 0; i < n; i++) {
        if (!not_loaded(r[i])) {
            continue;
        }

        if (!loaded) {
            log_msg(LOG_WARN, "%s: loading the state functions again",
                    r[i]->str);
        }

        if (!loaded && conn_load_functions(w->c) != 0) {
            if (w->c->err) {
                goto failed;
            }

            break;
        }

        loaded = 1;
        freeReplyObject(r[i]);
        r[i] = NULL;

        if (redisAppendFormattedCommand(w->c, b->call[i].cmd,
                                        b->call[i].len) != REDIS_OK
            || redisGetReply(w->c, (void **) &r[i]) != REDIS_OK)
        {
            log_msg(LOG_ERROR, "Redis FCALL wa_apply_1: %s", w->c->errstr);
            goto failed;
        }
    }

    for (i = 0; i < n; i++) {
        call = &b->call[i];

        if (r[i]->type == REDIS_REPLY_ERROR) {
            /* left pending: reclaimed, retried, dead after max-deliveries */
            log_msg(LOG_ERROR, "applying %zu entries of %s failed: %s",
                    call->n, w->stream[call->s], r[i]->str);
            w->n.errors++;

        } else if (r[i]->type == REDIS_REPLY_ARRAY && r[i]->elements == 4) {
            w->n.applied += r[i]->element[0]->integer;
            w->n.duplicates += r[i]->element[1]->integer;
            w->n.skipped += r[i]->element[2]->integer;
            w->n.dead += r[i]->element[3]->integer;

            if (r[i]->element[3]->integer) {
                log_msg(LOG_ERROR, "%lld entries of %s could not be applied, "
                        "moved to %s", r[i]->element[3]->integer,
                        w->stream[call->s], w->dead);
            }
        }

        freeReplyObject(r[i]);
    }

    free_calls(b);

    return 0;

failed:

    for (i = 0; i < n; i++) {
        if (r[i]) {
            freeReplyObject(r[i]);
        }
    }

    free_calls(b);

    return -1;
}


/* apply entries of stream s in one FCALL; -1 if the connection is gone */
static int
apply(worker_t *w, int s, redisReply **entries, size_t n)
{
    batch_t  b;

    prepare(w, s, entries, n, &b.call[0]);
    b.ncalls = b.call[0].n ? 1 : 0;

    if (send_calls(w, &b) != 0) {
        free_calls(&b);
        return -1;
    }

    return finish_calls(w, &b);
}


static int
nogroup(redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        /* the group was lost (a Redis restart without persistence) */
        log_msg(LOG_WARN, "%s: creating the groups again", r->str);
        return 1;
    }

    return 0;
}


/*
 * Waits until Redis has written the whole reply of the XREADGROUP sent
 * before a PING, without parsing it: its bytes end with the PING's reply.
 * An entry's value can end the same way at the end of one read; the calls
 * then go out a little early, which costs time, not order.
 */
static int
read_written(worker_t *w)
{
    redisReader  *rd;

    if (write_out(w) != 0) {
        return -1;
    }

    rd = w->c->reader;

    while (rd->len - rd->pos < 7
           || memcmp(rd->buf + rd->len - 7, "+PONG\r\n", 7) != 0)
    {
        if (redisBufferRead(w->c) != REDIS_OK) {
            return -1;
        }
    }

    return 0;
}


/*
 * XREADGROUP on every stream: from ">" (new entries), or from "0" (the
 * entries this consumer was given before and has not acknowledged: what a
 * previous run under the same name held when it died).  *r is NULL when
 * there is nothing to apply; -1 if the connection is gone.
 *
 * With a batch in hand (b), its calls go out once Redis has written the
 * reply, and hiredis makes that reply's objects (0.9 ms for 512 entries)
 * while Redis applies them: sent with the XREADGROUP, they would run
 * before the reply had left (Redis writes 64 KB of a reply per turn).
 */
static int
read_group(worker_t *w, const char *from, long block_ms, batch_t *b,
    redisReply **r)
{
    redisReply  *pong;
    int          k, argc;
    const char  *argv[9 + 2 * NSTREAMS];
    char         count[32], block[32];

    snprintf(count, sizeof(count), "%ld", w->o->batch);
    snprintf(block, sizeof(block), "%ld", block_ms);

    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = w->o->group;
    argv[argc++] = w->o->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;

    if (block_ms) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }

    argv[argc++] = "STREAMS";

    for (k = 0; k < NSTREAMS; k++) {
        argv[argc + k] = w->stream[k];
        argv[argc + NSTREAMS + k] = from;
    }

    argc += 2 * NSTREAMS;

    *r = NULL;
    pong = NULL;

    if (redisAppendCommandArgv(w->c, argc, argv, NULL) != REDIS_OK
        || (b && redisAppendCommand(w->c, "PING") != REDIS_OK)
        || (b && read_written(w) != 0))
    {
        log_msg(LOG_ERROR, "Redis XREADGROUP: %s", w->c->errstr);
        return -1;
    }

    if (b && send_calls(w, b) != 0) {
        return -1;
    }

    if (redisGetReply(w->c, (void **) r) != REDIS_OK
        || (b && redisGetReply(w->c, (void **) &pong) != REDIS_OK))
    {
        log_msg(LOG_ERROR, "Redis XREADGROUP: %s", w->c->errstr);

        if (*r) {
            freeReplyObject(*r);
            *r = NULL;
        }

        return -1;
    }

    if (pong) {
        freeReplyObject(pong);
    }

    if (nogroup(*r)) {
        freeReplyObject(*r);
        *r = NULL;

        /* the calls sent meanwhile are answered before the groups are */
        if (b && finish_calls(w, b) != 0) {
            return -1;
        }

        return consume_groups(w);
    }

    if ((*r)->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, "Redis XREADGROUP: %s", (*r)->str);
    }

    if ((*r)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*r);
        *r = NULL;
    }

    return 0;
}


/* one call per stream in an XREADGROUP reply; the number of entries */
static int
prepare_reply(worker_t *w, redisReply *r, batch_t *b)
{
    int          k, got;
    size_t       i;
    redisReply  *s;

    b->ncalls = 0;
    got = 0;

    for (i = 0; r && i < r->elements; i++) {
        s = r->element[i];

        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
            continue;
        }

        for (k = 0; k < NSTREAMS; k++) {
            if (strcmp(s->element[0]->str, w->stream[k]) == 0) {
                got += (int) s->element[1]->elements;
                prepare(w, k, s->element[1]->element, s->element[1]->elements,
                        &b->call[b->ncalls]);

                if (b->call[b->ncalls].n) {
                    b->ncalls++;
                }

                break;
            }
        }
    }

    return got;
}


/*
 * New entries, pipelined: Redis writes the next batch before the batch in
 * hand goes out, and the worker parses and formats it while Redis applies
 * the one in hand, so that their work overlaps.  The batch read last is
 * held until the next call (consume_drain applies it when stopping); a
 * worker killed meanwhile leaves it pending, for consume_own_pending.
 */
int
consume_read(worker_t *w)
{
    int          rc;
    batch_t      next;
    redisReply  *r;

    /* with a batch in hand, no waiting for more: it goes out meanwhile */
    if (w->held.ncalls) {
        rc = read_group(w, ">", 0, &w->held, &r);

    } else {
        rc = read_group(w, ">", w->o->block_ms, NULL, &r);
    }

    if (rc != 0) {
        return -1;
    }

    prepare_reply(w, r, &next);

    if (r) {
        freeReplyObject(r);
    }

    rc = finish_calls(w, &w->held);
    w->held = next;

    return rc;
}


/* the batch in hand: applied when stopping, forgotten with the connection */
int
consume_drain(worker_t *w)
{
    if (send_calls(w, &w->held) != 0) {
        free_calls(&w->held);
        return -1;
    }

    return finish_calls(w, &w->held);
}


void
consume_forget(worker_t *w)
{
    free_calls(&w->held);
}


/* first thing after a (re)start: what this consumer held, in its order */
int
consume_own_pending(worker_t *w)
{
    int          got, rounds;
    batch_t      b;
    redisReply  *r;

    for (rounds = 0; rounds < 1000; rounds++) {
        if (read_group(w, "0", 0, NULL, &r) != 0) {
            return -1;
        }

        got = prepare_reply(w, r, &b);

        if (r) {
            freeReplyObject(r);
        }

        if (b.ncalls == 0) {
            break;
        }

        if (send_calls(w, &b) != 0) {
            free_calls(&b);
            return -1;
        }

        if (finish_calls(w, &b) != 0) {
            return -1;
        }

        log_msg(LOG_INFO, "applied %d entries this consumer held before "
                "a restart", got);
    }

    return 0;
}


/* pending entries delivered too often go to the dead-letter stream */
static int
bury(worker_t *w, int s, redisReply *e, long long deliveries)
{
    int           i;
    char          times[32];
    size_t        m, argc;
    const char  **argv;
    size_t       *lens;
    redisReply   *r;

    argc = 11 + e->element[1]->elements;
    argv = malloc(argc * sizeof(char *));
    lens = malloc(argc * sizeof(size_t));

    if (argv == NULL || lens == NULL) {
        log_msg(LOG_ERROR, "out of memory");
        exit(1);
    }

    snprintf(times, sizeof(times), "%lld", deliveries);

    argv[0] = "XADD"; argv[1] = w->dead; argv[2] = "*";
    argv[3] = "stream"; argv[4] = w->stream[s];
    argv[5] = "id"; argv[6] = e->element[0]->str;
    argv[7] = "reason";
    argv[8] = "delivered too many times without being applied";
    argv[9] = "deliveries"; argv[10] = times;

    for (i = 0; i < 11; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (m = 0; m < e->element[1]->elements; m++) {
        argv[11 + m] = e->element[1]->element[m]->str;
        lens[11 + m] = e->element[1]->element[m]->len;
    }

    redisAppendCommand(w->c, "MULTI");
    redisAppendCommandArgv(w->c, (int) argc, argv, lens);
    redisAppendCommand(w->c, "XACK %s %s %s", w->stream[s], w->o->group,
                       e->element[0]->str);
    redisAppendCommand(w->c, "EXEC");

    free(argv);
    free(lens);

    for (i = 0; i < 4; i++) {
        if (redisGetReply(w->c, (void **) &r) != REDIS_OK) {
            log_msg(LOG_ERROR, "Redis dead-letter: %s", w->c->errstr);
            return -1;
        }

        freeReplyObject(r);
    }

    log_msg(LOG_ERROR, "entry %s of %s delivered %lld times, moved to %s",
            e->element[0]->str, w->stream[s], deliveries, w->dead);
    w->n.dead++;

    return 0;
}


static long long
deliveries(redisReply *pending, const char *id)
{
    size_t       i;
    redisReply  *p;

    for (i = 0; pending && i < pending->elements; i++) {
        p = pending->element[i];

        if (p->type == REDIS_REPLY_ARRAY && p->elements == 4
            && strcmp(p->element[0]->str, id) == 0)
        {
            return p->element[3]->integer;
        }
    }

    return 0;
}


static int
reclaim_stream(worker_t *w, int s)
{
    int          rounds;
    char         cursor[64], idle[32], count[32];
    size_t       i, n, keep;
    redisReply  *r, *entries, *pending, *e, **keepv;

    snprintf(cursor, sizeof(cursor), "0-0");
    snprintf(idle, sizeof(idle), "%ld", w->o->claim_idle_ms);
    snprintf(count, sizeof(count), "%ld", w->o->batch);

    /* bounded, so that new entries are not starved */
    for (rounds = 0; rounds < 16; rounds++) {
        r = redisCommand(w->c, "XAUTOCLAIM %s %s %s %s %s COUNT %s",
                         w->stream[s], w->o->group, w->o->consumer, idle,
                         cursor, count);
        if (r == NULL) {
            log_msg(LOG_ERROR, "Redis XAUTOCLAIM: %s", w->c->errstr);
            return -1;
        }

        if (nogroup(r)) {
            freeReplyObject(r);
            return consume_groups(w);
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
            log_msg(LOG_ERROR, "Redis XAUTOCLAIM %s: %s", w->stream[s],
                    r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);
            return 0;
        }

        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        entries = r->element[1];
        n = entries->elements;

        if (n) {
            /* how often each was delivered, this claim included */
            /* hiredis's format knows no %zu */
            pending = redisCommand(w->c, "XPENDING %s %s %s %s %lu %s",
                                   w->stream[s], w->o->group,
                                   entries->element[0]->element[0]->str,
                                   entries->element[n - 1]->element[0]->str,
                                   (unsigned long) n, w->o->consumer);
            if (pending == NULL) {
                log_msg(LOG_ERROR, "Redis XPENDING: %s", w->c->errstr);
                freeReplyObject(r);
                return -1;
            }

            log_msg(LOG_WARN, "reclaimed %zu entries of %s idle over %s ms",
                    n, w->stream[s], idle);
            w->n.reclaimed += n;

            keepv = malloc(n * sizeof(redisReply *));
            if (keepv == NULL) {
                log_msg(LOG_ERROR, "out of memory");
                exit(1);
            }

            for (i = 0, keep = 0; i < n; i++) {
                e = entries->element[i];

                if (!valid_entry(e)) {
                    continue;
                }

                if (deliveries(pending, e->element[0]->str)
                    > w->o->max_deliveries)
                {
                    if (bury(w, s, e, deliveries(pending,
                                                 e->element[0]->str)) != 0)
                    {
                        free(keepv);
                        freeReplyObject(pending);
                        freeReplyObject(r);
                        return -1;
                    }

                    continue;
                }

                keepv[keep++] = e;
            }

            freeReplyObject(pending);

            if (keep && apply(w, s, keepv, keep) != 0) {
                free(keepv);
                freeReplyObject(r);
                return -1;
            }

            free(keepv);
        }

        freeReplyObject(r);

        if (strcmp(cursor, "0-0") == 0) {
            break;
        }
    }

    return 0;
}


int
consume_reclaim(worker_t *w)
{
    int  s;

    for (s = 0; s < NSTREAMS; s++) {
        if (reclaim_stream(w, s) != 0) {
            return -1;
        }
    }

    return 0;
}
