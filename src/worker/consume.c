/*
 * wa-relayd: the consumer loop's reading of the event streams.
 *
 * Entries are read in the group through the stream reader (reader.c) and
 * applied in batches by the Redis function wa_apply_1
 * (redis/wa_state.lua), which acknowledges each entry in the same atomic
 * call.  Entries left pending by a worker that died are taken over once
 * idle; one delivered more than --max-deliveries times goes to
 * <prefix>:dead instead.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "worker.h"


void
wa_consume_init(wa_worker_t *w, const wa_options_t *o,
    const wa_part_t *part)
{
    int  i;

    memset(w, 0, sizeof(wa_worker_t));
    w->o = o;
    w->part = part;

    wa_link_init(&w->link, o, part->slot, "");

    snprintf(w->dead, sizeof(w->dead), "%s:%s", part->prefix,
             WA_STREAM_DEAD);
    snprintf(w->guard, sizeof(w->guard), "%s:" WA_KEY_MIGRATING,
             part->prefix);
    wa_reader_init(&w->reader, &w->link, part->prefix, w->dead);

    for (i = 0; i < WA_STREAM_COUNT; i++) {
        snprintf(w->stream[i], sizeof(w->stream[i]), "%s:%s", part->prefix,
                 wa_stream_names[i]);
        wa_reader_add(&w->reader, w->stream[i]);
    }
}


/* a string of a reply is lit, compared with its length: it may hold NULs */
#define reply_is(r, lit)                                                      \
    ((r)->len == sizeof(lit) - 1 && memcmp((r)->str, lit, (r)->len) == 0)


/* "message" entries whose text is a keyword carry keyword=optout|optin */
static const char *
keyword(wa_worker_t *w, redisReply *fields)
{
    size_t       i;
    redisReply  *text;
    int          message;

    message = 0;
    text = NULL;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (reply_is(fields->element[i], WA_FIELD_KIND)) {
            message = reply_is(fields->element[i + 1], WA_KIND_MESSAGE);

        } else if (reply_is(fields->element[i], WA_FIELD_TEXT)) {
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

/* a field the state functions never read (redis/wa_state.lua) */
static int
left_out(redisReply *name)
{
    static const struct {
        const char  *str;
        size_t       len;
    } names[] = {
        { WA_FIELD_RAW, sizeof(WA_FIELD_RAW) - 1 },
        { WA_FIELD_FIELD, sizeof(WA_FIELD_FIELD) - 1 },
        { WA_FIELD_RECEIVED_AT, sizeof(WA_FIELD_RECEIVED_AT) - 1 },
        { WA_FIELD_V, sizeof(WA_FIELD_V) - 1 },
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
 * One entry's arguments from argv + k: its id, its field count (in nf, a
 * buffer of 24 bytes), and the fields the rules read.  Values are
 * binary-safe: lengths come from the reply.  The fields the rules never
 * read stay behind (left_out): every argument costs Redis a string in the
 * function's Lua, and the raw JSON is most of an entry's bytes; the
 * function reads it from the stream if the entry goes dead.  Returns the
 * new k.
 */
/* the entry's kind counted in the call, for the metrics */
static void
count_kind(wa_apply_call_t *call, redisReply *fields)
{
    int          i;
    size_t       m;
    const char  *kind;

    kind = "";

    for (m = 0; m + 1 < fields->elements; m += 2) {
        if (reply_is(fields->element[m], WA_FIELD_KIND)) {
            kind = fields->element[m + 1]->str;
            break;
        }
    }

    for (i = 0; i < call->nkinds; i++) {
        if (strcmp(call->kinds[i].name, kind) == 0) {
            call->kinds[i].n++;
            return;
        }
    }

    if (call->nkinds == WA_CALL_KINDS) {
        kind = "other";
        i = WA_CALL_KINDS;

    } else {
        i = call->nkinds++;
    }

    snprintf(call->kinds[i].name, sizeof(call->kinds[i].name), "%s", kind);
    call->kinds[i].n++;
}


static size_t
prepare_entry(wa_worker_t *w, redisReply *e, const char **argv,
    size_t *lens, size_t k, char *nf)
{
    size_t       m, pairs;
    const char  *kw;
    redisReply  *f;

    f = e->element[1];
    kw = keyword(w, f);

    argv[k] = e->element[0]->str;
    lens[k++] = e->element[0]->len;
    pairs = k++;

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
        argv[k] = WA_FIELD_KEYWORD;
        lens[k++] = sizeof(WA_FIELD_KEYWORD) - 1;
        argv[k] = kw;
        lens[k++] = strlen(kw);
    }

    lens[pairs] = snprintf(nf, 24, "%zu", (k - pairs - 1) / 2);
    argv[pairs] = nf;

    return k;
}


/*
 * The FCALL wa_apply_1 of entries of stream s, formatted: it holds copies
 * of the values, so the reply they came in can be freed at once.
 */
static void
prepare(wa_worker_t *w, int s, redisReply **entries, size_t n,
    wa_apply_call_t *call)
{
    int           len;
    char          ttl[32], count[32], *nf, *cmd;
    size_t        i, j, k, argc, counted, *lens;
    const char  **argv;

    argc = 10;

    for (i = 0; i < n; i++) {
        argc += 4 + (wa_reader_valid(entries[i])
                     ? entries[i]->element[1]->elements : 0);
    }

    argv = malloc(argc * sizeof(char *));
    lens = malloc(argc * sizeof(size_t));
    nf = malloc(n * 24);

    if (argv == NULL || lens == NULL || nf == NULL) {
        wa_log(WA_LOG_ERROR, "out of memory");
        exit(1);
    }

    snprintf(ttl, sizeof(ttl), "%ld", w->o->seen_ttl);

    k = 0;
    argv[k++] = "FCALL";
    argv[k++] = "wa_apply_1";
    argv[k++] = w->o->cluster ? "2" : "1";
    argv[k++] = w->stream[s];

    /*
     * In a Cluster, a key that is never written: while the partition's
     * slot moves to another node the call is refused (TRYAGAIN, ASK)
     * rather than run on the half of the keys one node has
     */
    if (w->o->cluster) {
        argv[k++] = w->guard;
    }

    argv[k++] = w->part->prefix;
    argv[k++] = w->o->group;
    argv[k++] = ttl;
    argv[k++] = w->apply_options;
    counted = k;
    argv[k++] = count;

    for (i = 0; i < k; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (i = 0, j = 0; i < n; i++) {
        if (wa_reader_valid(entries[i])) {
            k = prepare_entry(w, entries[i], argv, lens, k, nf + i * 24);
            j++;
        }
    }

    lens[counted] = snprintf(count, sizeof(count), "%zu", j);

    memset(call, 0, sizeof(wa_apply_call_t));
    call->s = s;
    call->n = j;

    for (i = 0; i < n; i++) {
        if (wa_reader_valid(entries[i])) {
            count_kind(call, entries[i]->element[1]);
        }
    }

    if (j) {
        len = redisFormatCommandArgv(&cmd, (int) k, argv, lens);
        if (len < 0) {
            wa_log(WA_LOG_ERROR, "out of memory");
            exit(1);
        }

        call->cmd = cmd;
        call->len = (size_t) len;
    }

    free(argv);
    free(lens);
    free(nf);
}


/* the calls go out, their replies are not waited for: -1 if the link broke */
static int
send_calls(wa_worker_t *w, wa_apply_batch_t *b)
{
    int  i;

    for (i = 0; i < b->ncalls; i++) {
        if (wa_link_append_formatted(&w->link, b->call[i].cmd,
                                     b->call[i].len) != 0)
        {
            return -1;
        }

        b->call[i].sent_us = wa_clock_us();
    }

    return wa_link_write(&w->link);
}


static void
free_calls(wa_apply_batch_t *b)
{
    int  i;

    for (i = 0; i < b->ncalls; i++) {
        redisFreeCommand(b->call[i].cmd);
    }

    b->ncalls = 0;
}


/* every call sent found no function: load it, then each goes again */
static int
reload_and_retry(wa_worker_t *w, wa_apply_batch_t *b, redisReply **r, int n)
{
    int  i, loaded;

    for (i = 0, loaded = 0; i < n; i++) {
        if (!wa_link_not_loaded(r[i])) {
            continue;
        }

        if (!loaded) {
            wa_log(WA_LOG_WARN, "%s: loading the state functions again",
                   r[i]->str);

            if (wa_link_load_functions(&w->link) != 0) {
                return w->link.c->err ? -1 : 0;
            }

            loaded = 1;
        }

        freeReplyObject(r[i]);
        r[i] = NULL;

        if (wa_link_append_formatted(&w->link, b->call[i].cmd,
                                     b->call[i].len) != 0
            || (r[i] = wa_link_reply(&w->link)) == NULL)
        {
            return -1;
        }
    }

    return 0;
}


/* what wa_apply_1 said of a call's entries */
static void
count_reply(wa_worker_t *w, wa_apply_call_t *call, redisReply *r)
{
    int          i;
    const char  *st;

    st = w->stream[call->s];
    wa_counters_observe(WA_HIST_BATCH, wa_clock_us() - call->sent_us);

    if (r->type == REDIS_REPLY_ERROR) {
        /* left pending: reclaimed, retried, dead after max-deliveries */
        wa_log(WA_LOG_ERROR, "applying %zu entries of %s failed: %s",
               call->n, st, r->str);
        w->n.errors++;
        wa_counters_add(WA_FAM_ENTRIES, st, "error", (long long) call->n);
        return;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        return;
    }

    w->n.applied += r->element[0]->integer;
    w->n.duplicates += r->element[1]->integer;
    w->n.skipped += r->element[2]->integer;
    w->n.dead += r->element[3]->integer;

    wa_counters_add(WA_FAM_ENTRIES, st, "applied", r->element[0]->integer);
    wa_counters_add(WA_FAM_ENTRIES, st, "duplicate", r->element[1]->integer);
    wa_counters_add(WA_FAM_ENTRIES, st, "skipped", r->element[2]->integer);
    wa_counters_add(WA_FAM_ENTRIES, st, "dead", r->element[3]->integer);

    for (i = 0; i <= WA_CALL_KINDS; i++) {
        wa_counters_add(WA_FAM_EVENTS, st, call->kinds[i].name,
                       call->kinds[i].n);
    }

    if (r->element[3]->integer) {
        wa_log(WA_LOG_ERROR, "%lld entries of %s could not be applied, "
               "moved to %s", r->element[3]->integer, w->stream[call->s],
               w->dead);
    }
}


/* the replies of calls sent, in order; -1 if the connection is gone */
static int
finish_calls(wa_worker_t *w, wa_apply_batch_t *b)
{
    int          i, n, rc;
    redisReply  *r[WA_STREAM_COUNT];

    rc = 0;

    for (n = 0; n < b->ncalls; n++) {
        r[n] = wa_link_reply(&w->link);
        if (r[n] == NULL) {
            rc = -1;
            break;
        }
    }

    if (rc == 0) {
        rc = reload_and_retry(w, b, r, n);
    }

    for (i = 0; i < n; i++) {
        if (r[i] == NULL) {
            continue;
        }

        if (rc == 0) {
            count_reply(w, &b->call[i], r[i]);
        }

        freeReplyObject(r[i]);
    }

    free_calls(b);

    return rc;
}


/* entries of stream s in one FCALL (what the reader took over) */
static int
apply(void *data, int s, redisReply **entries, size_t n)
{
    wa_worker_t       *w = data;
    wa_apply_batch_t   b;

    prepare(w, s, entries, n, &b.call[0]);
    b.ncalls = b.call[0].n ? 1 : 0;

    if (send_calls(w, &b) != 0) {
        free_calls(&b);
        return -1;
    }

    return finish_calls(w, &b);
}


/*
 * XREADGROUP on every stream: from ">" (new entries), or from "0" (the
 * entries this consumer was given before and has not acknowledged: what a
 * previous run under the same name held when it died).  *r is NULL when
 * there is nothing to apply; -1 if the connection is gone.
 *
 * With a batch in hand (b), its calls go out once Redis has written the
 * whole reply (a PING behind the XREADGROUP marks its end), and hiredis
 * parses that reply while Redis applies them.  Sent with the XREADGROUP,
 * they would run before the reply had left: Redis writes replies at the
 * end of a turn of its loop, after every command that turn read.  Parsed
 * before they go, the reply would keep Redis waiting.
 */
static int
read_group(wa_worker_t *w, const char *from, long block_ms,
    wa_apply_batch_t *b, redisReply **r)
{
    wa_args_t    a;
    redisReply  *pong;

    *r = NULL;
    pong = NULL;

    if (wa_reader_append(&w->reader, from, w->o->batch, block_ms) != 0) {
        return -1;
    }

    if (b) {
        wa_args(&a, "PING", NULL);

        if (wa_link_append(&w->link, &a) != 0
            || wa_link_read_to_pong(&w->link) != 0
            || send_calls(w, b) != 0)
        {
            return -1;
        }
    }

    *r = wa_link_reply(&w->link);

    if (*r == NULL || (b && (pong = wa_link_reply(&w->link)) == NULL)) {
        if (*r) {
            freeReplyObject(*r);
            *r = NULL;
        }

        return -1;
    }

    if (pong) {
        freeReplyObject(pong);
    }

    if (wa_reader_check(&w->reader, r) == 1) {
        /* the calls sent meanwhile are answered before the groups are */
        if (b && finish_calls(w, b) != 0) {
            return -1;
        }

        return wa_reader_groups(&w->reader);
    }

    return 0;
}


/* one call per stream in an XREADGROUP reply; the number of entries */
static int
prepare_reply(wa_worker_t *w, redisReply *r, wa_apply_batch_t *b)
{
    int          s, got;
    redisReply  *entries;

    b->ncalls = 0;
    got = 0;

    for (s = 0; r && s < WA_STREAM_COUNT; s++) {
        entries = wa_reader_entries(&w->reader, r, s);
        if (entries == NULL) {
            continue;
        }

        got += (int) entries->elements;
        prepare(w, s, entries->element, entries->elements,
                &b->call[b->ncalls]);

        if (b->call[b->ncalls].n) {
            b->ncalls++;
        }
    }

    return got;
}


/*
 * New entries, pipelined: Redis applies the batch in hand while the worker
 * formats the next.  The batch read last is held until the next call
 * (wa_consume_drain applies it when stopping); a worker killed meanwhile
 * leaves it pending, for what wa_consume_start reads first.
 */
int
wa_consume_read(wa_worker_t *w)
{
    int                rc;
    wa_apply_batch_t   next;
    redisReply        *r;

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
wa_consume_drain(wa_worker_t *w)
{
    if (send_calls(w, &w->held) != 0) {
        free_calls(&w->held);
        return -1;
    }

    return finish_calls(w, &w->held);
}


void
wa_consume_forget(wa_worker_t *w)
{
    free_calls(&w->held);
}


/*
 * First thing on a (re)connection: the groups, then what this consumer
 * held before a restart, in its order.
 */
int
wa_consume_start(wa_worker_t *w)
{
    int                got, rounds;
    wa_apply_batch_t   b;
    redisReply        *r;

    if (wa_reader_groups(&w->reader) != 0) {
        return -1;
    }

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

        wa_log(WA_LOG_INFO, "applied %d entries this consumer held before "
               "a restart", got);
    }

    return 0;
}


/* entries dead consumers left, idle long enough: taken over and applied */
int
wa_consume_reclaim(wa_worker_t *w)
{
    int  s;

    for (s = 0; s < WA_STREAM_COUNT; s++) {
        if (wa_reader_claim(&w->reader, s, w->o->batch, 16, apply, w) != 0) {
            return -1;
        }
    }

    return 0;
}


/* every stream trimmed to the groups' progress */
int
wa_consume_trim(wa_worker_t *w)
{
    int  s;

    for (s = 0; s < WA_STREAM_COUNT; s++) {
        if (wa_trim_stream(&w->reader, s, wa_stream_names[s]) != 0) {
            wa_log(WA_LOG_ERROR, "trimming %s failed", w->stream[s]);
            return -1;
        }
    }

    return 0;
}
