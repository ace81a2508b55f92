/*
 * wa-relay: one FCALL for the requests of one turn of the event loop.
 *
 * Every body whose events are ready in the same turn joins the open call;
 * at the end of the turn hiredis formats it, and the write that follows
 * (ngx_http_whatsapp_redis.c) takes it to Redis.  Much of what Redis spends
 * on a call is the call itself: its lookup, the function's KEYS and ARGV
 * tables and error handler, the reply; this worker, too, then reads one
 * reply instead of many (docs/benchmarks.md has what it saves).
 *
 * The events are copied into the call's own pool: the parser that made
 * them is reused by the next body.  Once a call holds
 * NGX_HTTP_WHATSAPP_CALL_FULL bytes (the size docs/benchmarks.md found
 * best), the next request sends it and has it written
 * before joining a new one, so that Redis, on the other core, works on it
 * while this worker parses the rest; a request is thus never answered from
 * inside its own handler.  Requests of different locations (streams,
 * dedupe window, cap) never share a call.
 *
 * The reply counts what each request appended, in order.  A call fails as
 * a whole: no connection, an error or a reply that does not count its
 * requests answers each of them 503.  The pool goes with the reply, which
 * hiredis always delivers, NULL if the connection is lost first.
 *
 * A call made while the Redis link is coming up (connecting, or sending
 * its preamble) is held until the link is up, then sent; if the link goes
 * down instead, its requests are answered 503.  Each request's own timer
 * bounds the wait.
 *
 * There is a call per partition (ngx_http_whatsapp_fanout.c says which
 * events go to which), its arguments are formatted by src/core/wa_ingest.c,
 * and with whatsapp_redis_wait a WAIT follows it (ngx_http_whatsapp_wait.c).
 */

#include "ngx_http_whatsapp_call.h"


#define NGX_HTTP_WHATSAPP_CALL_FULL  32768
#define NGX_HTTP_WHATSAPP_CALL_POOL  32768

#define NGX_HTTP_WHATSAPP_REDIRECTS  5


static ngx_http_whatsapp_call_t *ngx_http_whatsapp_call_open(
    ngx_http_whatsapp_loc_conf_t *wlcf, ngx_uint_t part);
static ngx_int_t ngx_http_whatsapp_call_copy(ngx_http_whatsapp_call_t *call,
    ngx_http_whatsapp_pending_t *p, wa_batch_t *batch,
    const uint16_t *part_of);
static void ngx_http_whatsapp_call_flush(ngx_event_t *ev);
static void ngx_http_whatsapp_call_send(ngx_http_whatsapp_call_t *call);
static ngx_int_t ngx_http_whatsapp_call_format(ngx_http_whatsapp_call_t *call,
    int *argc, const char ***argv, size_t **lens);
static void ngx_http_whatsapp_call_reply(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_whatsapp_call_wait(ngx_http_whatsapp_call_t *call);
static void ngx_http_whatsapp_call_waited(void *data, ngx_uint_t round,
    redisReply *rr);
static void ngx_http_whatsapp_call_results(ngx_http_whatsapp_call_t *call,
    redisReply *rr);
static void ngx_http_whatsapp_call_answer(ngx_http_whatsapp_call_t *call);
static void ngx_http_whatsapp_call_done(ngx_http_whatsapp_call_t *call,
    redisReply *rr);


/* the calls of this turn, one per partition, of one location */
static ngx_http_whatsapp_call_t  *ngx_http_whatsapp_calls[WA_PARTITIONS_MAX];
static ngx_uint_t                 ngx_http_whatsapp_open[WA_PARTITIONS_MAX];
static ngx_uint_t                 ngx_http_whatsapp_nopen;
static ngx_http_whatsapp_loc_conf_t  *ngx_http_whatsapp_open_wlcf;

static u_char                     ngx_http_whatsapp_listed[WA_PARTITIONS_MAX];

static ngx_event_t                ngx_http_whatsapp_call_event;
static ngx_queue_t                ngx_http_whatsapp_call_held = {
    &ngx_http_whatsapp_call_held, &ngx_http_whatsapp_call_held
};


/* the calls of the turn go: the location changed, or the turn ended */
static void
ngx_http_whatsapp_call_send_open(void)
{
    ngx_uint_t                 i, part;
    ngx_http_whatsapp_call_t  *call;

    for (i = 0; i < ngx_http_whatsapp_nopen; i++) {
        part = ngx_http_whatsapp_open[i];
        call = ngx_http_whatsapp_calls[part];
        ngx_http_whatsapp_calls[part] = NULL;
        ngx_http_whatsapp_listed[part] = 0;

        if (call) {
            ngx_http_whatsapp_call_send(call);
        }
    }

    ngx_http_whatsapp_nopen = 0;
    ngx_http_whatsapp_open_wlcf = NULL;
}


ngx_int_t
ngx_http_whatsapp_call_part(ngx_http_whatsapp_loc_conf_t *wlcf,
    ngx_uint_t part, wa_batch_t *batch, const uint16_t *part_of,
    ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending)
{
    size_t                        size;
    ngx_uint_t                    full;
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_call_t     *call;
    ngx_http_whatsapp_pending_t  *p;

    /* requests of different locations never share a call */
    if (ngx_http_whatsapp_open_wlcf != wlcf) {
        ngx_http_whatsapp_call_send_open();
    }

    call = ngx_http_whatsapp_calls[part];

    if (call) {
        /* read before the send: a call not sent is freed at once */
        size = call->size;
        full = (size >= NGX_HTTP_WHATSAPP_CALL_FULL);

        if (full) {
            ngx_http_whatsapp_calls[part] = NULL;
            ngx_http_whatsapp_call_send(call);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "whatsapp webhook: a call of %uz bytes is "
                           "written now", size);

            link = ngx_http_whatsapp_redis_route(wlcf->parts[part].slot);

            if (link) {
                ngx_http_whatsapp_link_write(link);
            }
        }
    }

    if (ngx_http_whatsapp_redis_state(wlcf->parts[part].slot)
        == NGX_DECLINED)
    {
        return NGX_DECLINED;
    }

    call = ngx_http_whatsapp_calls[part];

    if (call == NULL) {
        call = ngx_http_whatsapp_call_open(wlcf, part);
        if (call == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_pcalloc(call->pool, sizeof(ngx_http_whatsapp_pending_t));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_whatsapp_call_copy(call, p, batch, part_of) != NGX_OK) {
        return NGX_ERROR;
    }

    p->data = data;
    p->done = done;
    p->call = call;

    if (call->first == NULL) {
        call->first = p;
    }

    *call->last = &p->req;
    call->last = &p->req.next;
    call->ingest.requests++;

    *pending = p;

    return NGX_OK;
}


/* the call and its pool belong to no request: they log to the cycle */
static ngx_http_whatsapp_call_t *
ngx_http_whatsapp_call_open(ngx_http_whatsapp_loc_conf_t *wlcf,
    ngx_uint_t part)
{
    ngx_pool_t                *pool;
    ngx_event_t               *ev;
    ngx_http_whatsapp_call_t  *call;

    pool = ngx_create_pool(NGX_HTTP_WHATSAPP_CALL_POOL, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_http_whatsapp_call_t));
    if (call == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    call->pool = pool;
    call->wlcf = wlcf;
    call->part = part;
    call->last = &call->ingest.first;
    call->state = NGX_AGAIN;

    ngx_http_whatsapp_calls[part] = call;
    ngx_http_whatsapp_open_wlcf = wlcf;

    if (!ngx_http_whatsapp_listed[part]) {
        ngx_http_whatsapp_listed[part] = 1;
        ngx_http_whatsapp_open[ngx_http_whatsapp_nopen++] = part;
    }

    /* sent once every ready event of this turn has been handled */

    ev = &ngx_http_whatsapp_call_event;

    if (!ev->posted) {
        ev->handler = ngx_http_whatsapp_call_flush;
        ev->log = ngx_cycle->log;
        ngx_post_event(ev, &ngx_posted_events);
    }

    return call;
}


/* an event of another partition than the call's */
#define ngx_http_whatsapp_skip(part_of, i, part)                              \
    ((part_of) != NULL && (part_of)[i] != (part))


/* one event, its fields and its dedupe key, copied at s: where it ends */
static u_char *
ngx_http_whatsapp_event_copy(ngx_http_whatsapp_call_t *call,
    const wa_event_t *src, wa_event_t *ev, wa_bytes_t *key, wa_field_t *f,
    u_char *s)
{
    ngx_uint_t                 j;
    ngx_http_whatsapp_part_t  *part;

    part = &call->wlcf->parts[call->part];

    /* kind and event_id are needed only in the dedupe key */
    ngx_memzero(ev, sizeof(wa_event_t));
    ev->stream = src->stream;
    ev->fields = f;
    ev->nfields = src->nfields;

    key->data = (char *) s;

    if (call->wlcf->dedupe) {
        s = ngx_cpymem(s, part->dedupe_prefix.data, part->dedupe_prefix.len);
        s = ngx_cpymem(s, src->kind, src->kind_len);
        *s++ = ':';
        s = ngx_cpymem(s, src->event_id, src->event_id_len);
    }

    key->len = (char *) s - key->data;

    for (j = 0; j < src->nfields; j++, f++) {
        f->name = (char *) s;
        f->name_len = src->fields[j].name_len;
        s = ngx_cpymem(s, src->fields[j].name, f->name_len);

        f->data = (char *) s;
        f->len = src->fields[j].len;
        s = ngx_cpymem(s, src->fields[j].data, f->len);
    }

    call->ingest.used[ev->stream] = 1;

    return s;
}


/* the events of the call's partition, and their dedupe keys, into its pool */
static ngx_int_t
ngx_http_whatsapp_call_copy(ngx_http_whatsapp_call_t *call,
    ngx_http_whatsapp_pending_t *p, wa_batch_t *batch,
    const uint16_t *part_of)
{
    u_char       *s;
    size_t        size;
    ngx_uint_t    i, j, n, nfields;
    wa_bytes_t   *key;
    wa_field_t   *f;
    wa_event_t   *ev, *src;

    size = 0;
    nfields = 0;
    n = 0;

    for (i = 0; i < batch->nevents; i++) {
        if (ngx_http_whatsapp_skip(part_of, i, call->part)) {
            continue;
        }

        src = &batch->events[i];
        n++;

        if (call->wlcf->dedupe) {
            size += call->wlcf->parts[call->part].dedupe_prefix.len
                    + src->kind_len + 1 + src->event_id_len;
        }

        for (j = 0; j < src->nfields; j++) {
            size += src->fields[j].name_len + src->fields[j].len;
        }

        nfields += src->nfields;
    }

    ev = ngx_palloc(call->pool, n * sizeof(wa_event_t));
    key = ngx_palloc(call->pool, n * sizeof(wa_bytes_t));
    f = ngx_palloc(call->pool, nfields * sizeof(wa_field_t));
    s = ngx_pnalloc(call->pool, size);

    if (ev == NULL || key == NULL || f == NULL || s == NULL) {
        return NGX_ERROR;
    }

    p->req.events = ev;
    p->req.keys = key;
    p->req.nevents = n;

    for (i = 0; i < batch->nevents; i++) {
        if (!ngx_http_whatsapp_skip(part_of, i, call->part)) {
            s = ngx_http_whatsapp_event_copy(call, &batch->events[i], ev++,
                                             key++, f, s);
            f += batch->events[i].nfields;
        }
    }

    call->ingest.events += n;
    call->ingest.fields += nfields;

    /* about what the call will take in the protocol */
    call->size += size + (2 * nfields + 2 * n) * 8;

    return NGX_OK;
}


static void
ngx_http_whatsapp_call_flush(ngx_event_t *ev)
{
    ngx_http_whatsapp_call_send_open();
}


static void
ngx_http_whatsapp_call_send(ngx_http_whatsapp_call_t *call)
{
    int                        argc;
    size_t                    *lens, asking_len;
    ngx_int_t                  rc;
    ngx_uint_t                 slot;
    const char               **argv, *asking;
    ngx_http_whatsapp_link_t  *link;

    asking = "ASKING";
    asking_len = 6;

    if (call->ingest.requests == 0) {
        /* opened by a request that then found no memory for its events */
        ngx_destroy_pool(call->pool);
        return;
    }

    slot = call->wlcf->parts[call->part].slot;

    if (call->ask == NULL
        && ngx_http_whatsapp_redis_state(slot) == NGX_AGAIN)
    {
        ngx_queue_insert_tail(&ngx_http_whatsapp_call_held, &call->held);
        return;
    }

    link = call->ask ? call->ask : ngx_http_whatsapp_redis_route(slot);
    rc = link ? ngx_http_whatsapp_call_format(call, &argc, &argv, &lens)
              : NGX_DECLINED;

    /* hiredis copies the arguments: the pool stays for the requests */

    if (rc == NGX_OK && call->ask) {
        rc = ngx_http_whatsapp_link_command(link, 1, &asking, &asking_len,
                                            NULL, NULL, &call->generation);
    }

    if (rc == NGX_OK) {
        call->link = link;
        rc = ngx_http_whatsapp_link_command(link, argc, argv, lens,
                                            ngx_http_whatsapp_call_reply,
                                            call, &call->generation);
    }

    call->ask = NULL;

    call->state = rc;

    if (rc == NGX_OK) {
        call->sent_us = ngx_http_whatsapp_now_us();
        ngx_http_whatsapp_call_wait(call);
    }

    if (rc != NGX_OK) {
        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "whatsapp webhook: no memory for a call of %ui "
                          "requests", call->ingest.requests);
        }

        ngx_http_whatsapp_call_done(call, NULL);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "whatsapp webhook: %ui events of %ui requests sent to "
                   "redis in %d arguments", call->ingest.events,
                   call->ingest.requests,
                   argc);
}


/* FCALL wa_ingest_3 of the call's requests (src/core/wa_ingest.h) */
static ngx_int_t
ngx_http_whatsapp_call_format(ngx_http_whatsapp_call_t *call, int *argcp,
    const char ***argvp, size_t **lensp)
{
    char                          *digits;
    size_t                        *lens, argc;
    ngx_uint_t                     i;
    const char                   **argv;
    wa_ingest_call_t              *c;
    ngx_http_whatsapp_part_t      *part;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = call->wlcf;
    part = &wlcf->parts[call->part];
    c = &call->ingest;

    for (i = 0; i < WA_STREAM_COUNT; i++) {
        c->streams[i].data = (char *) part->streams[i].data;
        c->streams[i].len = part->streams[i].len;
    }

    /* with partitions, a key never written: see wa_ingest.h */
    c->guard.data = (char *) part->guard.data;
    c->guard.len = wlcf->partitions > 1 ? part->guard.len : 0;
    c->dedupe = wlcf->dedupe != 0;
    c->dedupe_seconds.data = (char *) wlcf->dedupe_text.data;
    c->dedupe_seconds.len = wlcf->dedupe_text.len;
    c->cap.data = (char *) wlcf->maxlen_text.data;
    c->cap.len = wlcf->maxlen_text.len;

    argc = wa_ingest_argc(c);

    argv = ngx_palloc(call->pool, argc * sizeof(char *));
    lens = ngx_palloc(call->pool, argc * sizeof(size_t));
    digits = ngx_pnalloc(call->pool, wa_ingest_digits(c));

    if (argv == NULL || lens == NULL || digits == NULL) {
        return NGX_ERROR;
    }

    *argcp = (int) wa_ingest_format(c, argv, lens, digits);
    *argvp = argv;
    *lensp = lens;

    return NGX_OK;
}


/*
 * An error reply: what it asks of the links is the cluster layer's
 * (ngx_http_whatsapp_redis_answer).  A call MOVED or ASKed elsewhere was
 * refused before it ran: it is sent again there (NGX_AGAIN), a few times
 * at most.  With WAIT, the WAIT that followed the refused call still
 * answers on the first link: the call's pool stays until it has.
 */
static ngx_int_t
ngx_http_whatsapp_call_error(ngx_http_whatsapp_call_t *call, redisReply *rr)
{
    ngx_uint_t                 ask;
    ngx_http_whatsapp_link_t  *link;

    link = ngx_http_whatsapp_redis_answer(call->link, call->generation, rr,
                                          &ask);
    if (link == NULL) {
        return NGX_OK;
    }

    if (call->redirects++ == NGX_HTTP_WHATSAPP_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "whatsapp redis: \"%s\" not followed", rr->str);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "whatsapp redis: a call of %ui requests sent again: %s",
                  call->ingest.requests, rr->str);

    /* the WAIT sent after the refused call still answers, on the old link */
    if (call->wait > 0) {
        call->stale++;
    }

    call->wait = 0;
    call->round++;
    call->ask = ask ? link : NULL;
    call->state = NGX_AGAIN;

    ngx_http_whatsapp_call_send(call);

    return NGX_AGAIN;
}


static void
ngx_http_whatsapp_call_reply(redisAsyncContext *ac, void *reply, void *data)
{
    ngx_http_whatsapp_call_t  *call = data;

    redisReply                    *rr = reply;
    ngx_http_whatsapp_counters_t  *c;

    c = ngx_http_whatsapp_counters_get();

    if (rr && c) {
        ngx_http_whatsapp_observe(&c->redis_call,
                                  ngx_http_whatsapp_now_us() - call->sent_us);
    }

    if (rr && rr->type == REDIS_REPLY_ERROR
        && ngx_http_whatsapp_call_error(call, rr) == NGX_AGAIN)
    {
        /* sent again where the Cluster says */
        return;
    }

    if (call->wait > 0) {
        /* told once WAIT answers: it always does, NULL if the link is lost */
        ngx_http_whatsapp_call_results(call, rr);
        return;
    }

    ngx_http_whatsapp_call_done(call, rr);
}


/*
 * WAIT numreplicas timeout, after the call on the same link.  A WAIT that
 * cannot be queued leaves the call without its count: "appended" is then
 * answered as not replicated.
 */
static void
ngx_http_whatsapp_call_wait(ngx_http_whatsapp_call_t *call)
{
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_whatsapp_module);

    if (wmcf->wait_replicas == 0) {
        return;
    }

    call->wait = wmcf->wait_replicas;

    if (ngx_http_whatsapp_wait_send(call->link, &call->generation,
                                    call->pool, wmcf->wait_replicas,
                                    wmcf->wait_timeout, call->round,
                                    ngx_http_whatsapp_call_waited, call)
        != NGX_OK)
    {
        call->wait = -1;
    }
}


/* WAIT answered: the requests are told, with what it says */
static void
ngx_http_whatsapp_call_waited(void *data, ngx_uint_t round, redisReply *rr)
{
    ngx_http_whatsapp_call_t  *call = data;

    if (round != call->round) {
        /* the WAIT after a call a Cluster refused: the call went on */
        if (--call->stale == 0 && call->answered) {
            ngx_destroy_pool(call->pool);
        }

        return;
    }

    ngx_http_whatsapp_wait_outcomes(call->first, rr, call->wait);
    ngx_http_whatsapp_call_answer(call);
}


/*
 * What a request's events came to: the call's reply (NULL: none), and in
 * it the request's own count, if the reply counts each request of the call.
 */
static void
ngx_http_whatsapp_call_result(ngx_http_whatsapp_call_t *call,
    redisReply *rr, redisReply *count, ngx_uint_t events,
    ngx_http_whatsapp_result_t *res)
{
    ngx_memzero(res, sizeof(ngx_http_whatsapp_result_t));
    res->events = events;

    if (rr == NULL) {
        res->outcome = call->state == NGX_DECLINED
                       ? NGX_HTTP_WHATSAPP_NOT_CONNECTED
                       : call->state == NGX_OK ? NGX_HTTP_WHATSAPP_LOST
                                               : NGX_HTTP_WHATSAPP_NOT_SENT;
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        res->outcome = NGX_HTTP_WHATSAPP_REDIS_ERROR;
        res->error.data = (u_char *) rr->str;
        res->error.len = rr->len;
        return;
    }

    if (count && count->type == REDIS_REPLY_INTEGER && count->integer >= 0
        && (ngx_uint_t) count->integer <= events)
    {
        res->outcome = NGX_HTTP_WHATSAPP_APPENDED;
        res->appended = (ngx_uint_t) count->integer;
        return;
    }

    res->outcome = NGX_HTTP_WHATSAPP_BAD_REPLY;
    res->type = count ? count->type : rr->type;
}


/*
 * What each request's events came to, kept with it.  Told later (after
 * WAIT), an error's text is copied: hiredis frees the reply on return.
 */
static void
ngx_http_whatsapp_call_results(ngx_http_whatsapp_call_t *call,
    redisReply *rr)
{
    u_char                       *copy;
    ngx_uint_t                    i, each;
    ngx_http_whatsapp_pending_t  *p;

    each = (rr && rr->type == REDIS_REPLY_ARRAY
            && rr->elements == call->ingest.requests);

    copy = NULL;

    if (call->wait > 0 && rr && rr->type == REDIS_REPLY_ERROR) {
        copy = ngx_pnalloc(call->pool, rr->len);
        if (copy) {
            ngx_memcpy(copy, rr->str, rr->len);
        }
    }

    for (p = call->first, i = 0; p; p = ngx_http_whatsapp_pending_next(p), i++)
    {
        ngx_http_whatsapp_call_result(call, rr,
                                      each ? rr->element[i] : NULL,
                                      p->req.nevents, &p->res);

        if (call->wait > 0 && p->res.outcome == NGX_HTTP_WHATSAPP_REDIS_ERROR)
        {
            p->res.error.data = copy;
            p->res.error.len = copy ? rr->len : 0;
        }

        if (call->wait < 0 && p->res.outcome == NGX_HTTP_WHATSAPP_APPENDED) {
            /* WAIT could not be sent: replication unknown */
            p->res.outcome = NGX_HTTP_WHATSAPP_NOT_REPLICATED;
            p->res.replicas = -1;
        }
    }
}


/* each request still there is told what its events came to */
static void
ngx_http_whatsapp_call_answer(ngx_http_whatsapp_call_t *call)
{
    void                         *data;
    ngx_http_whatsapp_pending_t  *p;

    for (p = call->first; p; p = ngx_http_whatsapp_pending_next(p)) {
        if (p->data == NULL) {
            /* answered already (timeout) or gone: nothing left to tell */
            continue;
        }

        data = p->data;
        p->data = NULL;

        p->done(data, &p->res);
    }

    call->answered = 1;

    if (call->stale == 0) {
        ngx_destroy_pool(call->pool);
    }
}


static void
ngx_http_whatsapp_call_done(ngx_http_whatsapp_call_t *call, redisReply *rr)
{
    ngx_http_whatsapp_call_results(call, rr);
    ngx_http_whatsapp_call_answer(call);
}


/*
 * The Redis links changed: a call held meanwhile is sent, in order, if the
 * link of its slot is up; answered 503 if there is none; held still if it
 * is coming up.
 */
void
ngx_http_whatsapp_call_links(void)
{
    ngx_int_t                  state;
    ngx_queue_t               *q, *next, held;
    ngx_http_whatsapp_call_t  *call;

    /* a call sent may be held again: walk what was held until now */
    ngx_queue_init(&held);

    if (!ngx_queue_empty(&ngx_http_whatsapp_call_held)) {
        ngx_queue_add(&held, &ngx_http_whatsapp_call_held);
        ngx_queue_init(&ngx_http_whatsapp_call_held);
    }

    for (q = ngx_queue_head(&held); q != ngx_queue_sentinel(&held); q = next)
    {
        next = ngx_queue_next(q);
        call = ngx_queue_data(q, ngx_http_whatsapp_call_t, held);

        state = ngx_http_whatsapp_redis_state(
                                   call->wlcf->parts[call->part].slot);

        ngx_queue_remove(q);

        if (state == NGX_OK) {
            ngx_http_whatsapp_call_send(call);

        } else if (state == NGX_DECLINED) {
            call->state = NGX_DECLINED;
            ngx_http_whatsapp_call_done(call, NULL);

        } else {
            ngx_queue_insert_tail(&ngx_http_whatsapp_call_held, q);
        }
    }
}


void
ngx_http_whatsapp_call_late(ngx_http_whatsapp_call_t *call)
{
    if (call->state == NGX_OK) {
        ngx_http_whatsapp_link_reset(call->link, call->generation,
                                     "a reply took longer than "
                                     "whatsapp_redis_timeout");
    }
}


void
ngx_http_whatsapp_call_exit(void)
{
    if (ngx_http_whatsapp_call_event.posted) {
        ngx_delete_posted_event(&ngx_http_whatsapp_call_event);
    }

    /* the requests of an unsent call are dropped with the worker */
    ngx_memzero(ngx_http_whatsapp_calls, sizeof(ngx_http_whatsapp_calls));
    ngx_memzero(ngx_http_whatsapp_listed, sizeof(ngx_http_whatsapp_listed));
    ngx_http_whatsapp_nopen = 0;
    ngx_http_whatsapp_open_wlcf = NULL;
    ngx_queue_init(&ngx_http_whatsapp_call_held);
}
