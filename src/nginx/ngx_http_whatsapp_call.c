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


#define NGX_HTTP_WHATSAPP_REDIRECTS  5


struct ngx_http_whatsapp_call_s {
    ngx_queue_t                    held;      /* waiting for the link */
    ngx_pool_t                    *pool;
    ngx_http_whatsapp_loc_conf_t  *wlcf;
    ngx_uint_t                     part;      /* its partition */
    ngx_http_whatsapp_link_t      *link;      /* where it was sent */
    ngx_http_whatsapp_link_t      *ask;       /* ASK: sent there, once */
    ngx_uint_t                     redirects;
    ngx_uint_t                     round;     /* sends, for WAIT's replies */
    ngx_uint_t                     stale;     /* WAITs owed by links left */
    ngx_uint_t                     answered;
    ngx_http_whatsapp_pending_t   *first;
    ngx_http_whatsapp_pending_t  **last;
    ngx_uint_t                     requests;
    ngx_uint_t                     events;
    ngx_uint_t                     fields;
    size_t                         size;
    u_char                         used[WA_STREAM_COUNT];
    ngx_uint_t                     generation;   /* of its link */
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


/* a WAIT's reply is for the call's round it was sent in */
typedef struct {
    ngx_http_whatsapp_call_t     *call;
    ngx_uint_t                    round;
} ngx_http_whatsapp_wait_t;


/* a request whose events go to several partitions, and its parts */
typedef struct {
    void                         *data;      /* the caller's; NULL: gone */
    ngx_http_whatsapp_done_pt     done;
    ngx_uint_t                    left;      /* parts not answered yet */
    ngx_uint_t                    nparts;
    ngx_http_whatsapp_result_t    res;       /* theirs, summed */
    u_char                        error[256];
    ngx_http_whatsapp_pending_t   head;      /* what the caller holds */
    ngx_http_whatsapp_pending_t  *part[1];   /* nparts; NULL: answered */
} ngx_http_whatsapp_group_t;


static ngx_int_t ngx_http_whatsapp_call_part(
    ngx_http_whatsapp_loc_conf_t *wlcf, ngx_uint_t part, wa_batch_t *batch,
    ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending);
static ngx_int_t ngx_http_whatsapp_call_group(
    ngx_http_whatsapp_loc_conf_t *wlcf, wa_batch_t *batch,
    ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending);
static void ngx_http_whatsapp_group_done(void *data,
    ngx_http_whatsapp_result_t *res);
static ngx_http_whatsapp_call_t *ngx_http_whatsapp_call_open(
    ngx_http_whatsapp_loc_conf_t *wlcf, ngx_uint_t part);
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


/* the calls of this turn, one per partition, of one location */
static ngx_http_whatsapp_call_t  *ngx_http_whatsapp_calls[WA_PARTITIONS_MAX];
static ngx_uint_t                 ngx_http_whatsapp_open[WA_PARTITIONS_MAX];
static ngx_uint_t                 ngx_http_whatsapp_nopen;
static ngx_http_whatsapp_loc_conf_t  *ngx_http_whatsapp_open_wlcf;

static u_char                     ngx_http_whatsapp_listed[WA_PARTITIONS_MAX];

/*
 * The partition of each event of a body, how many it has room for, and
 * the one whose events call_copy takes (NGX_CONF_UNSET_UINT: all)
 */
static uint16_t                  *ngx_http_whatsapp_part_of;
static size_t                     ngx_http_whatsapp_part_n;
static ngx_uint_t                 ngx_http_whatsapp_filter =
                                                      NGX_CONF_UNSET_UINT;

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


/* the partition of an event: its business number's, or its WABA's */
static ngx_uint_t
ngx_http_whatsapp_event_part(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_event_t *ev)
{
    const wa_field_t  *f;

    f = wa_event_field(ev, WA_FIELD_PHONE_NUMBER_ID);

    if (f == NULL || f->len == 0) {
        f = wa_event_field(ev, WA_FIELD_WABA_ID);
    }

    if (f == NULL) {
        return 0;
    }

    return wa_partition_of(f->data, f->len, wlcf->partitions);
}


ngx_int_t
ngx_http_whatsapp_call_add(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_batch_t *batch, ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending)
{
    uint16_t    *part_of;
    ngx_uint_t   i, first;

    if (ngx_http_whatsapp_open_wlcf != wlcf) {
        ngx_http_whatsapp_call_send_open();
    }

    if (wlcf->partitions == 1 || batch->nevents == 0) {
        return ngx_http_whatsapp_call_part(wlcf, 0, batch, done, data,
                                           pending);
    }

    if (ngx_http_whatsapp_part_n < batch->nevents) {
        part_of = ngx_alloc(batch->nevents * 2 * sizeof(uint16_t),
                            ngx_cycle->log);
        if (part_of == NULL) {
            return NGX_ERROR;
        }

        ngx_free(ngx_http_whatsapp_part_of);
        ngx_http_whatsapp_part_of = part_of;
        ngx_http_whatsapp_part_n = batch->nevents * 2;
    }

    part_of = ngx_http_whatsapp_part_of;
    first = ngx_http_whatsapp_event_part(wlcf, &batch->events[0]);
    part_of[0] = (uint16_t) first;

    for (i = 1; i < batch->nevents; i++) {
        part_of[i] = (uint16_t) ngx_http_whatsapp_event_part(wlcf,
                                                         &batch->events[i]);
        if (part_of[i] != first) {
            first = NGX_CONF_UNSET_UINT;
        }
    }

    if (first != NGX_CONF_UNSET_UINT) {
        return ngx_http_whatsapp_call_part(wlcf, first, batch, done, data,
                                           pending);
    }

    /* the ngx_http_whatsapp_part_of of each event is read by call_copy */

    return ngx_http_whatsapp_call_group(wlcf, batch, done, data, pending);
}


/* the events of batch that belong to partition part join its call */
static ngx_int_t
ngx_http_whatsapp_call_part(ngx_http_whatsapp_loc_conf_t *wlcf,
    ngx_uint_t part, wa_batch_t *batch, ngx_http_whatsapp_done_pt done,
    void *data, ngx_http_whatsapp_pending_t **pending)
{
    size_t                        size;
    ngx_uint_t                    full;
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_call_t     *call;
    ngx_http_whatsapp_pending_t  *p;

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


/*
 * A request in several partitions: a part in the call of each.  Nothing
 * is added unless every partition can take its part.
 */
static ngx_int_t
ngx_http_whatsapp_call_group(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_batch_t *batch, ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending)
{
    u_char                      used[WA_PARTITIONS_MAX];
    ngx_int_t                   rc;
    ngx_uint_t                  i, n, part;
    ngx_http_whatsapp_group_t  *g;

    n = 0;

    ngx_memzero(used, wlcf->partitions);

    for (i = 0; i < batch->nevents; i++) {
        part = ngx_http_whatsapp_part_of[i];

        if (!used[part]) {
            used[part] = 1;
            n++;

            if (ngx_http_whatsapp_redis_state(wlcf->parts[part].slot)
                == NGX_DECLINED)
            {
                return NGX_DECLINED;
            }
        }
    }

    g = ngx_calloc(sizeof(ngx_http_whatsapp_group_t)
                   + n * sizeof(ngx_http_whatsapp_pending_t *),
                   ngx_cycle->log);
    if (g == NULL) {
        return NGX_ERROR;
    }

    g->data = data;
    g->done = done;
    g->res.outcome = NGX_HTTP_WHATSAPP_APPENDED;
    g->head.group = g;

    rc = NGX_OK;

    for (part = 0; part < wlcf->partitions && rc == NGX_OK; part++) {
        if (!used[part]) {
            continue;
        }

        /* the batch's events of this partition only (call_copy) */
        ngx_http_whatsapp_filter = part;

        rc = ngx_http_whatsapp_call_part(wlcf, part, batch,
                                         ngx_http_whatsapp_group_done, g,
                                         &g->part[g->nparts]);
        if (rc == NGX_OK) {
            g->nparts++;
        }
    }

    ngx_http_whatsapp_filter = NGX_CONF_UNSET_UINT;

    g->left = g->nparts;

    if (rc != NGX_OK) {
        /* the parts added are answered to the group, which tells nobody */
        g->data = NULL;

        if (g->nparts == 0) {
            ngx_free(g);
        }

        return rc;
    }

    *pending = &g->head;

    return NGX_OK;
}


/* a part answered: the request is, once all are */
static void
ngx_http_whatsapp_group_done(void *data, ngx_http_whatsapp_result_t *res)
{
    ngx_http_whatsapp_group_t *g = data;

    void                         *caller;
    ngx_uint_t                    i;
    ngx_http_whatsapp_pending_t  *p;

    p = (ngx_http_whatsapp_pending_t *)
            ((u_char *) res - offsetof(ngx_http_whatsapp_pending_t, res));

    for (i = 0; i < g->nparts; i++) {
        if (g->part[i] == p) {
            g->part[i] = NULL;
        }
    }

    g->res.events += res->events;

    if (res->outcome == NGX_HTTP_WHATSAPP_APPENDED) {
        g->res.appended += res->appended;

    } else if (g->res.outcome == NGX_HTTP_WHATSAPP_APPENDED) {
        /* the first failure says why; its text outlives the reply */
        g->res.outcome = res->outcome;
        g->res.type = res->type;
        g->res.replicas = res->replicas;
        g->res.error.len = ngx_min(res->error.len, sizeof(g->error));
        g->res.error.data = g->error;
        ngx_memcpy(g->error, res->error.data, g->res.error.len);
    }

    if (--g->left) {
        return;
    }

    caller = g->data;

    if (caller) {
        g->data = NULL;
        g->done(caller, &g->res);
    }

    ngx_free(g);
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
    call->last = &call->first;
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


/* the events, their fields and dedupe keys, into the call's pool */
static ngx_int_t
ngx_http_whatsapp_call_copy(ngx_http_whatsapp_call_t *call,
    ngx_http_whatsapp_pending_t *p, wa_batch_t *batch)
{
    u_char                        *s;
    size_t                         size;
    ngx_str_t                     *key;
    ngx_uint_t                     i, j, n, nfields, filter;
    wa_field_t                    *f;
    wa_event_t                    *ev, *src;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = call->wlcf;
    filter = ngx_http_whatsapp_filter;

    size = 0;
    nfields = 0;
    n = 0;

#define ngx_http_whatsapp_skip(i)                                             \
    (filter != NGX_CONF_UNSET_UINT && ngx_http_whatsapp_part_of[i] != filter)

    for (i = 0; i < batch->nevents; i++) {
        if (ngx_http_whatsapp_skip(i)) {
            continue;
        }

        src = &batch->events[i];
        n++;

        if (wlcf->dedupe) {
            size += wlcf->parts[call->part].dedupe_prefix.len
                    + src->kind_len + 1 + src->event_id_len;
        }

        for (j = 0; j < src->nfields; j++) {
            size += src->fields[j].name_len + src->fields[j].len;
        }

        nfields += src->nfields;
    }

    ev = ngx_palloc(call->pool, n * sizeof(wa_event_t));
    key = ngx_palloc(call->pool, n * sizeof(ngx_str_t));
    f = ngx_palloc(call->pool, nfields * sizeof(wa_field_t));
    s = ngx_pnalloc(call->pool, size);

    if (ev == NULL || key == NULL || f == NULL || s == NULL) {
        return NGX_ERROR;
    }

    p->events = ev;
    p->keys = key;
    p->nevents = n;

    for (i = 0; i < batch->nevents; i++) {
        if (ngx_http_whatsapp_skip(i)) {
            continue;
        }

        src = &batch->events[i];

        /* kind and event_id are needed only in the dedupe key */

        ngx_memzero(ev, sizeof(wa_event_t));
        ev->stream = src->stream;
        ev->fields = f;
        ev->nfields = src->nfields;

        key->data = s;

        if (wlcf->dedupe) {
            s = ngx_cpymem(s, wlcf->parts[call->part].dedupe_prefix.data,
                           wlcf->parts[call->part].dedupe_prefix.len);
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
        ev++;
        key++;
    }

#undef ngx_http_whatsapp_skip

    call->events += n;
    call->fields += nfields;

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

    if (call->requests == 0) {
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
    ngx_http_whatsapp_part_t      *part;
    ngx_http_whatsapp_pending_t   *pending;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = call->wlcf;
    part = &wlcf->parts[call->part];

    nstreams = 0;
    for (i = 0; i < WA_STREAM_COUNT; i++) {
        nstreams += call->used[i];
    }

    /* with partitions, a key never written goes last: see below */
    nkeys = (wlcf->dedupe ? call->events : 0) + nstreams
            + (wlcf->partitions > 1);

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

        ngx_http_whatsapp_arg(part->streams[i].data, part->streams[i].len);
    }

    /*
     * While a Cluster moves the partition's slot to another node, a call
     * naming a key that does not exist is refused (TRYAGAIN, or ASK), never
     * run on the half of the keys one node has: the key named is never
     * written, so the call is refused until the slot has moved.
     */
    if (wlcf->partitions > 1) {
        ngx_http_whatsapp_arg(part->guard.data, part->guard.len);
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


/*
 * An error reply that the link or the Cluster's map answers to.  MOVED and
 * ASK, from a Cluster, refused the call before it ran: it is sent again
 * where they say (NGX_AGAIN), a few times at most.  With WAIT, the WAIT
 * that followed the refused call still answers on the first link: the
 * call's pool stays until it has.
 */
static ngx_int_t
ngx_http_whatsapp_call_error(ngx_http_whatsapp_call_t *call, redisReply *rr)
{
    ngx_uint_t                 moved;
    wa_reply_kind_t            kind;
    ngx_http_whatsapp_link_t  *link;

    kind = wa_reply_kind(rr->str, rr->len);

    if (kind == WA_REPLY_NO_FUNCTION) {
        ngx_http_whatsapp_link_load_functions(call->link);
        return NGX_OK;
    }

    if (kind == WA_REPLY_READONLY) {
        /* a failover made the primary a replica: the link finds the new */
        ngx_http_whatsapp_redis_error(NGX_HTTP_WHATSAPP_ERR_REPLICA);
        ngx_http_whatsapp_link_reset(call->link, call->generation,
                                     "Redis became a replica (READONLY)");
        ngx_http_whatsapp_redis_refresh();
        return NGX_OK;
    }

    if (kind == WA_REPLY_CLUSTERDOWN) {
        ngx_http_whatsapp_redis_refresh();
        return NGX_OK;
    }

    moved = (kind == WA_REPLY_MOVED);

    if (!moved && kind != WA_REPLY_ASK) {
        return NGX_OK;
    }

    link = ngx_http_whatsapp_redis_redirect(moved, (u_char *) rr->str,
                                            rr->len);

    if (link == NULL || call->redirects++ == NGX_HTTP_WHATSAPP_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "whatsapp redis: \"%s\" not followed", rr->str);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "whatsapp redis: a call of %ui requests sent again: %s",
                  call->requests, rr->str);

    /* the WAIT sent after the refused call still answers, on the old link */
    if (call->wait > 0) {
        call->stale++;
    }

    call->wait = 0;
    call->round++;
    call->ask = moved ? NULL : link;
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
    u_char                         *p, num[2][NGX_INT_T_LEN];
    size_t                          lens[3];
    const char                     *argv[3];
    ngx_http_whatsapp_wait_t       *w;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_whatsapp_module);

    if (wmcf->wait_replicas == 0) {
        return;
    }

    w = ngx_palloc(call->pool, sizeof(ngx_http_whatsapp_wait_t));

    argv[0] = "WAIT";
    lens[0] = 4;

    p = ngx_sprintf(num[0], "%i", wmcf->wait_replicas);
    argv[1] = (const char *) num[0];
    lens[1] = p - num[0];

    p = ngx_sprintf(num[1], "%M", wmcf->wait_timeout);
    argv[2] = (const char *) num[1];
    lens[2] = p - num[1];

    call->wait = wmcf->wait_replicas;

    if (w == NULL) {
        call->wait = -1;
        return;
    }

    w->call = call;
    w->round = call->round;

    if (ngx_http_whatsapp_link_command(call->link, 3, argv, lens,
                                       ngx_http_whatsapp_call_wait_reply,
                                       w, &call->generation)
        != NGX_OK)
    {
        call->wait = -1;
    }
}


static void
ngx_http_whatsapp_call_wait_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_whatsapp_wait_t  *w = data;

    redisReply                   *rr = reply;
    ngx_int_t                     replicas;
    ngx_http_whatsapp_call_t     *call;
    ngx_http_whatsapp_pending_t  *p;

    call = w->call;

    if (w->round != call->round) {
        /* the WAIT after a call a Cluster refused: the call went on */
        if (--call->stale == 0 && call->answered) {
            ngx_destroy_pool(call->pool);
        }

        return;
    }

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


/* the request is gone (finalized): its part of the reply is dropped */
void
ngx_http_whatsapp_call_forget(ngx_http_whatsapp_pending_t *p)
{
    ngx_http_whatsapp_group_t  *g;

    g = p->group;

    if (g) {
        /* its parts go on; the last one frees the group */
        g->data = NULL;
        return;
    }

    p->data = NULL;
}


static void
ngx_http_whatsapp_call_late(ngx_http_whatsapp_call_t *call)
{
    if (call->state == NGX_OK) {
        ngx_http_whatsapp_link_reset(call->link, call->generation,
                                     "a reply took longer than "
                                     "whatsapp_redis_timeout");
    }
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
    ngx_uint_t                  i;
    ngx_http_whatsapp_group_t  *g;

    g = p->group;

    if (g == NULL) {
        p->data = NULL;
        ngx_http_whatsapp_call_late(p->call);
        return;
    }

    g->data = NULL;

    /* a part answered is NULL; a reset answers the others, and frees g */
    for (i = 0; i < g->nparts; i++) {
        if (g->part[i]) {
            ngx_http_whatsapp_call_late(g->part[i]->call);
            return;
        }
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

    ngx_free(ngx_http_whatsapp_part_of);
    ngx_http_whatsapp_part_of = NULL;
    ngx_http_whatsapp_part_n = 0;
}
