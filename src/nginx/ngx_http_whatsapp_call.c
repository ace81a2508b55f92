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
 * With whatsapp_redis_wait, a WAIT follows each call on the link: what the
 * call's reply says is kept, and told to the requests once WAIT counts the
 * replicas that have the writes; too few turn "appended" into 503, so that
 * Meta redelivers what a failover could lose (the dedupe keys went to the
 * replicas with the entries: a redelivery appends nothing twice).
 */

#include "ngx_http_whatsapp_module.h"


#define NGX_HTTP_WHATSAPP_FUNCTION   "wa_ingest_3"
#define NGX_HTTP_WHATSAPP_CALL_FULL  32768
#define NGX_HTTP_WHATSAPP_CALL_POOL  32768


struct ngx_http_whatsapp_call_s {
    ngx_queue_t                    held;      /* waiting for the link */
    ngx_pool_t                    *pool;
    ngx_http_whatsapp_loc_conf_t  *wlcf;
    ngx_http_whatsapp_pending_t   *first;
    ngx_http_whatsapp_pending_t  **last;
    ngx_uint_t                     requests;
    ngx_uint_t                     events;
    ngx_uint_t                     fields;
    size_t                         size;
    u_char                         used[WA_STREAM_COUNT];
    ngx_uint_t                     generation;
    ngx_int_t                      wait;      /* replicas WAIT wants, or 0 */
    ngx_msec_int_t                 sent_us;   /* for the round trip */
    /*
     * NGX_OK: sent, on the connection of that generation; NGX_AGAIN: it
     * waits for the end of the turn or for the link to come up;
     * NGX_DECLINED: not sent, Redis not being connected; NGX_ERROR: not
     * sent for lack of memory
     */
    ngx_int_t                      state;
};


static ngx_http_whatsapp_call_t *ngx_http_whatsapp_call_open(
    ngx_http_whatsapp_loc_conf_t *wlcf);
static ngx_int_t ngx_http_whatsapp_call_copy(ngx_http_whatsapp_call_t *call,
    ngx_http_whatsapp_pending_t *p, wa_batch_t *batch);
static void ngx_http_whatsapp_call_flush(ngx_event_t *ev);
static void ngx_http_whatsapp_call_send(ngx_http_whatsapp_call_t *call);
static ngx_int_t ngx_http_whatsapp_call_format(ngx_http_whatsapp_call_t *call,
    int *argc, const char ***argv, size_t **lens);
static void ngx_http_whatsapp_call_reply(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_whatsapp_call_wait(ngx_http_whatsapp_call_t *call);
static void ngx_http_whatsapp_call_wait_reply(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_whatsapp_call_results(ngx_http_whatsapp_call_t *call,
    redisReply *rr);
static void ngx_http_whatsapp_call_answer(ngx_http_whatsapp_call_t *call);
static void ngx_http_whatsapp_call_done(ngx_http_whatsapp_call_t *call,
    redisReply *rr);


static ngx_http_whatsapp_call_t  *ngx_http_whatsapp_call;
static ngx_event_t                ngx_http_whatsapp_call_event;
static ngx_queue_t                ngx_http_whatsapp_call_held = {
    &ngx_http_whatsapp_call_held, &ngx_http_whatsapp_call_held
};


ngx_int_t
ngx_http_whatsapp_call_add(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_batch_t *batch, ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending)
{
    size_t                        size;
    ngx_uint_t                    full;
    ngx_http_whatsapp_call_t     *call;
    ngx_http_whatsapp_pending_t  *p;

    call = ngx_http_whatsapp_call;

    if (call) {
        /* read before the send: a call not sent is freed at once */
        size = call->size;
        full = (size >= NGX_HTTP_WHATSAPP_CALL_FULL);

        if (full || call->wlcf != wlcf) {
            ngx_http_whatsapp_call = NULL;
            ngx_http_whatsapp_call_send(call);
        }

        if (full) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "whatsapp webhook: a call of %uz bytes is "
                           "written now", size);

            ngx_http_whatsapp_redis_write();
        }
    }

    if (ngx_http_whatsapp_redis_state() == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    call = ngx_http_whatsapp_call;

    if (call == NULL) {
        call = ngx_http_whatsapp_call_open(wlcf);
        if (call == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_pcalloc(call->pool, sizeof(ngx_http_whatsapp_pending_t));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_whatsapp_call_copy(call, p, batch) != NGX_OK) {
        return NGX_ERROR;
    }

    p->data = data;
    p->done = done;
    p->call = call;

    *call->last = p;
    call->last = &p->next;
    call->requests++;

    *pending = p;

    return NGX_OK;
}


/* the call and its pool belong to no request: they log to the cycle */
static ngx_http_whatsapp_call_t *
ngx_http_whatsapp_call_open(ngx_http_whatsapp_loc_conf_t *wlcf)
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
    call->last = &call->first;
    call->state = NGX_AGAIN;

    ngx_http_whatsapp_call = call;

    /* sent once every ready event of this turn has been handled */

    ev = &ngx_http_whatsapp_call_event;

    if (!ev->posted) {
        ev->handler = ngx_http_whatsapp_call_flush;
        ev->log = ngx_cycle->log;
        ngx_post_event(ev, &ngx_posted_events);
    }

    return call;
}


/* the events, their fields and dedupe keys, into the call's pool */
static ngx_int_t
ngx_http_whatsapp_call_copy(ngx_http_whatsapp_call_t *call,
    ngx_http_whatsapp_pending_t *p, wa_batch_t *batch)
{
    u_char                        *s;
    size_t                         size;
    ngx_str_t                     *key;
    ngx_uint_t                     i, j, nfields;
    wa_field_t                    *f;
    wa_event_t                    *ev, *src;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = call->wlcf;

    size = 0;
    nfields = 0;

    for (i = 0; i < batch->nevents; i++) {
        src = &batch->events[i];

        if (wlcf->dedupe) {
            size += wlcf->dedupe_prefix.len + src->kind_len + 1
                    + src->event_id_len;
        }

        for (j = 0; j < src->nfields; j++) {
            size += src->fields[j].name_len + src->fields[j].len;
        }

        nfields += src->nfields;
    }

    ev = ngx_palloc(call->pool, batch->nevents * sizeof(wa_event_t));
    key = ngx_palloc(call->pool, batch->nevents * sizeof(ngx_str_t));
    f = ngx_palloc(call->pool, nfields * sizeof(wa_field_t));
    s = ngx_pnalloc(call->pool, size);

    if (ev == NULL || key == NULL || f == NULL || s == NULL) {
        return NGX_ERROR;
    }

    p->events = ev;
    p->keys = key;
    p->nevents = batch->nevents;

    for (i = 0; i < batch->nevents; i++, ev++, key++) {
        src = &batch->events[i];

        /* kind and event_id are needed only in the dedupe key */

        ngx_memzero(ev, sizeof(wa_event_t));
        ev->stream = src->stream;
        ev->fields = f;
        ev->nfields = src->nfields;

        key->data = s;

        if (wlcf->dedupe) {
            s = ngx_cpymem(s, wlcf->dedupe_prefix.data,
                           wlcf->dedupe_prefix.len);
            s = ngx_cpymem(s, src->kind, src->kind_len);
            *s++ = ':';
            s = ngx_cpymem(s, src->event_id, src->event_id_len);
        }

        key->len = s - key->data;

        for (j = 0; j < src->nfields; j++, f++) {
            f->name = (char *) s;
            f->name_len = src->fields[j].name_len;
            s = ngx_cpymem(s, src->fields[j].name, f->name_len);

            f->data = (char *) s;
            f->len = src->fields[j].len;
            s = ngx_cpymem(s, src->fields[j].data, f->len);
        }

        call->used[ev->stream] = 1;
    }

    call->events += batch->nevents;
    call->fields += nfields;

    /* about what the call will take in the protocol */
    call->size += size + (2 * nfields + 2 * batch->nevents) * 8;

    return NGX_OK;
}


static void
ngx_http_whatsapp_call_flush(ngx_event_t *ev)
{
    ngx_http_whatsapp_call_t  *call;

    call = ngx_http_whatsapp_call;
    ngx_http_whatsapp_call = NULL;

    if (call) {
        ngx_http_whatsapp_call_send(call);
    }
}


static void
ngx_http_whatsapp_call_send(ngx_http_whatsapp_call_t *call)
{
    int           argc;
    size_t       *lens;
    const char  **argv;
    ngx_int_t     rc;

    if (call->requests == 0) {
        /* opened by a request that then found no memory for its events */
        ngx_destroy_pool(call->pool);
        return;
    }

    if (ngx_http_whatsapp_redis_state() == NGX_AGAIN) {
        ngx_queue_insert_tail(&ngx_http_whatsapp_call_held, &call->held);
        return;
    }

    rc = ngx_http_whatsapp_call_format(call, &argc, &argv, &lens);

    /* hiredis copies the arguments: the pool stays for the requests */

    if (rc == NGX_OK) {
        rc = ngx_http_whatsapp_redis_command(argc, argv, lens,
                                             ngx_http_whatsapp_call_reply,
                                             call, &call->generation);
    }

    call->state = rc;

    if (rc == NGX_OK) {
        call->sent_us = ngx_http_whatsapp_now_us();
        ngx_http_whatsapp_call_wait(call);
    }

    if (rc != NGX_OK) {
        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "whatsapp webhook: no memory for a call of %ui "
                          "requests", call->requests);
        }

        ngx_http_whatsapp_call_done(call, NULL);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "whatsapp webhook: %ui events of %ui requests sent to "
                   "redis in %d arguments", call->events, call->requests,
                   argc);
}


/*
 * FCALL wa_ingest_3 (redis/wa_ingest.lua):
 *
 *   FCALL wa_ingest_3 <dedupe keys + streams used> [<dedupe keys...>]
 *         <streams used...> <dedupe seconds> <cap> <requests>
 *         { <events> { <stream's index in KEYS> <n> <fields...> }... }...
 */
static ngx_int_t
ngx_http_whatsapp_call_format(ngx_http_whatsapp_call_t *call, int *argcp,
    const char ***argvp, size_t **lensp)
{
    u_char                        *num, *p;
    size_t                        *lens;
    ngx_uint_t                     i, j, k, argc, nkeys, nstreams;
    ngx_str_t                      index[WA_STREAM_COUNT];
    wa_event_t                    *ev;
    const char                   **argv;
    ngx_http_whatsapp_pending_t   *pending;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = call->wlcf;

    nstreams = 0;
    for (i = 0; i < WA_STREAM_COUNT; i++) {
        nstreams += call->used[i];
    }

    nkeys = (wlcf->dedupe ? call->events : 0) + nstreams;

    argc = 3 + nkeys + 3 + call->requests + 2 * call->events
           + 2 * call->fields;

    argv = ngx_palloc(call->pool, argc * sizeof(char *));
    lens = ngx_palloc(call->pool, argc * sizeof(size_t));
    num = ngx_pnalloc(call->pool, (call->requests + 2 * call->events
                                   + WA_STREAM_COUNT + 2)
                                  * NGX_INT_T_LEN);

    if (argv == NULL || lens == NULL || num == NULL) {
        return NGX_ERROR;
    }

#define ngx_http_whatsapp_arg(s, l)                                           \
    argv[k] = (const char *) (s); lens[k] = (l); k++

#define ngx_http_whatsapp_num(v)                                              \
    p = ngx_sprintf(num, "%ui", (ngx_uint_t) (v));                            \
    ngx_http_whatsapp_arg(num, p - num);                                      \
    num = p

    k = 0;

    ngx_http_whatsapp_arg("FCALL", 5);
    ngx_http_whatsapp_arg(NGX_HTTP_WHATSAPP_FUNCTION,
                          sizeof(NGX_HTTP_WHATSAPP_FUNCTION) - 1);
    ngx_http_whatsapp_num(nkeys);

    if (wlcf->dedupe) {
        for (pending = call->first; pending; pending = pending->next) {
            for (i = 0; i < pending->nevents; i++) {
                ngx_http_whatsapp_arg(pending->keys[i].data,
                                      pending->keys[i].len);
            }
        }
    }

    /* each stream used, with its index in KEYS for the events to name */

    for (i = 0; i < WA_STREAM_COUNT; i++) {
        if (!call->used[i]) {
            continue;
        }

        index[i].data = num;
        index[i].len = ngx_sprintf(num, "%ui", k - 2) - num;
        num += index[i].len;

        ngx_http_whatsapp_arg(wlcf->streams[i].data, wlcf->streams[i].len);
    }

    ngx_http_whatsapp_arg(wlcf->dedupe_text.data, wlcf->dedupe_text.len);
    ngx_http_whatsapp_arg(wlcf->maxlen_text.data, wlcf->maxlen_text.len);
    ngx_http_whatsapp_num(call->requests);

    for (pending = call->first; pending; pending = pending->next) {
        ngx_http_whatsapp_num(pending->nevents);

        for (i = 0; i < pending->nevents; i++) {
            ev = &pending->events[i];

            ngx_http_whatsapp_arg(index[ev->stream].data,
                                  index[ev->stream].len);
            ngx_http_whatsapp_num(ev->nfields);

            for (j = 0; j < ev->nfields; j++) {
                ngx_http_whatsapp_arg(ev->fields[j].name,
                                      ev->fields[j].name_len);
                ngx_http_whatsapp_arg(ev->fields[j].data, ev->fields[j].len);
            }
        }
    }

#undef ngx_http_whatsapp_num
#undef ngx_http_whatsapp_arg

    *argcp = (int) argc;
    *argvp = argv;
    *lensp = lens;

    return NGX_OK;
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
        && ngx_strncmp(rr->str, "ERR Function not found", 22) == 0)
    {
        ngx_http_whatsapp_redis_load_functions();
    }

    if (rr && rr->type == REDIS_REPLY_ERROR
        && ngx_strncmp(rr->str, "READONLY", 8) == 0)
    {
        /* a failover made the primary a replica: the link finds the new */
        ngx_http_whatsapp_redis_error(NGX_HTTP_WHATSAPP_ERR_REPLICA);
        ngx_http_whatsapp_redis_reset(call->generation,
                                      "Redis became a replica (READONLY)");
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
    u_char                         *p, num[2][NGX_INT_T_LEN];
    size_t                          lens[3];
    const char                     *argv[3];
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_whatsapp_module);

    if (wmcf->wait_replicas == 0) {
        return;
    }

    argv[0] = "WAIT";
    lens[0] = 4;

    p = ngx_sprintf(num[0], "%i", wmcf->wait_replicas);
    argv[1] = (const char *) num[0];
    lens[1] = p - num[0];

    p = ngx_sprintf(num[1], "%M", wmcf->wait_timeout);
    argv[2] = (const char *) num[1];
    lens[2] = p - num[1];

    call->wait = wmcf->wait_replicas;

    if (ngx_http_whatsapp_redis_command(3, argv, lens,
                                        ngx_http_whatsapp_call_wait_reply,
                                        call, &call->generation)
        != NGX_OK)
    {
        call->wait = -1;
    }
}


static void
ngx_http_whatsapp_call_wait_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_whatsapp_call_t  *call = data;

    redisReply                   *rr = reply;
    ngx_int_t                     replicas;
    ngx_http_whatsapp_pending_t  *p;

    replicas = (rr && rr->type == REDIS_REPLY_INTEGER) ? rr->integer : -1;

    for (p = call->first; p; p = p->next) {
        if (p->res.outcome != NGX_HTTP_WHATSAPP_APPENDED) {
            continue;
        }

        if (rr == NULL) {
            p->res.outcome = NGX_HTTP_WHATSAPP_LOST;

        } else if (replicas < call->wait) {
            p->res.outcome = NGX_HTTP_WHATSAPP_NOT_REPLICATED;
            p->res.replicas = replicas;
        }
    }

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
            && rr->elements == call->requests);

    copy = NULL;

    if (call->wait > 0 && rr && rr->type == REDIS_REPLY_ERROR) {
        copy = ngx_pnalloc(call->pool, rr->len);
        if (copy) {
            ngx_memcpy(copy, rr->str, rr->len);
        }
    }

    for (p = call->first, i = 0; p; p = p->next, i++) {
        ngx_http_whatsapp_call_result(call, rr,
                                      each ? rr->element[i] : NULL,
                                      p->nevents, &p->res);

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

    for (p = call->first; p; p = p->next) {
        if (p->data == NULL) {
            /* answered already (timeout) or gone: nothing left to tell */
            continue;
        }

        data = p->data;
        p->data = NULL;

        p->done(data, &p->res);
    }

    ngx_destroy_pool(call->pool);
}


static void
ngx_http_whatsapp_call_done(ngx_http_whatsapp_call_t *call, redisReply *rr)
{
    ngx_http_whatsapp_call_results(call, rr);
    ngx_http_whatsapp_call_answer(call);
}


/*
 * The Redis link came up: the calls held meanwhile are sent, in order.  Or
 * it went down: they are answered, 503.
 */
void
ngx_http_whatsapp_call_link(ngx_uint_t up)
{
    ngx_queue_t               *q;
    ngx_http_whatsapp_call_t  *call;

    while (!ngx_queue_empty(&ngx_http_whatsapp_call_held)) {
        q = ngx_queue_head(&ngx_http_whatsapp_call_held);
        ngx_queue_remove(q);

        call = ngx_queue_data(q, ngx_http_whatsapp_call_t, held);

        if (up) {
            ngx_http_whatsapp_call_send(call);

        } else {
            call->state = NGX_DECLINED;
            ngx_http_whatsapp_call_done(call, NULL);
        }
    }
}


/* the request is gone (finalized): its part of the reply is dropped */
void
ngx_http_whatsapp_call_forget(ngx_http_whatsapp_pending_t *p)
{
    p->data = NULL;
}


/*
 * The request gave up waiting.  A call sent and not answered in time means
 * a connection that cannot be trusted to answer in order any more: it is
 * reset, and every request still in it is answered 503.  A call that waits
 * for the end of the turn or for the link is left to go.
 */
void
ngx_http_whatsapp_call_timeout(ngx_http_whatsapp_pending_t *p)
{
    p->data = NULL;

    if (p->call->state == NGX_OK) {
        ngx_http_whatsapp_redis_reset(p->call->generation,
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
    ngx_http_whatsapp_call = NULL;
    ngx_queue_init(&ngx_http_whatsapp_call_held);
}
