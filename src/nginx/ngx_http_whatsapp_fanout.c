/*
 * wa-relay: the partitions of a request's events.
 *
 * An event goes to the partition of its business number, or of its WABA
 * when it has none (wa_partition.h).  A request whose events are all in
 * one partition joins that partition's call; one whose events span
 * several is a group: a part in the call of each, answered once every
 * part is, with the first failure as the answer.  Nothing is added unless
 * every partition can take its part.
 */

#include "ngx_http_whatsapp_call.h"


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


static ngx_int_t ngx_http_whatsapp_call_group(
    ngx_http_whatsapp_loc_conf_t *wlcf, wa_batch_t *batch,
    const uint16_t *part_of, ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending);
static void ngx_http_whatsapp_group_done(void *data,
    ngx_http_whatsapp_result_t *res);


/* the partition of each event of a body, and how many it has room for */
static uint16_t                  *ngx_http_whatsapp_part_of;
static size_t                     ngx_http_whatsapp_part_n;


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

    if (wlcf->partitions == 1 || batch->nevents == 0) {
        return ngx_http_whatsapp_call_part(wlcf, 0, batch, NULL, done, data,
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
        return ngx_http_whatsapp_call_part(wlcf, first, batch, NULL, done,
                                           data, pending);
    }

    return ngx_http_whatsapp_call_group(wlcf, batch, part_of, done, data,
                                        pending);
}


/*
 * A request in several partitions: a part in the call of each.  Nothing
 * is added unless every partition can take its part.
 */
static ngx_int_t
ngx_http_whatsapp_call_group(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_batch_t *batch, const uint16_t *part_of,
    ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending)
{
    u_char                      used[WA_PARTITIONS_MAX];
    ngx_int_t                   rc;
    ngx_uint_t                  i, n, part;
    ngx_http_whatsapp_group_t  *g;

    n = 0;

    ngx_memzero(used, wlcf->partitions);

    for (i = 0; i < batch->nevents; i++) {
        part = part_of[i];

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

        /* the batch's events of this partition only */
        rc = ngx_http_whatsapp_call_part(wlcf, part, batch, part_of,
                                         ngx_http_whatsapp_group_done, g,
                                         &g->part[g->nparts]);
        if (rc == NGX_OK) {
            g->nparts++;
        }
    }

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
ngx_http_whatsapp_fanout_exit(void)
{
    ngx_free(ngx_http_whatsapp_part_of);
    ngx_http_whatsapp_part_of = NULL;
    ngx_http_whatsapp_part_n = 0;
}
