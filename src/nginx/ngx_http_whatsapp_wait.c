/*
 * wa-relay: WAIT after a call (whatsapp_redis_wait).
 *
 * A WAIT follows each call on the same link: what the call's reply says
 * is kept, and told to the requests once WAIT counts the replicas that
 * have the writes; too few turn "appended" into 503, so that Meta
 * redelivers what a failover could lose (the dedupe keys went to the
 * replicas with the entries: a redelivery appends nothing twice).
 *
 * The call layer says when to send one and what to do once it answers
 * (ngx_http_whatsapp_call.c); this file sends it and reads the answer.
 */

#include "ngx_http_whatsapp_call.h"


/* a WAIT's reply is for the round of the call it was sent after */
typedef struct {
    ngx_http_whatsapp_waited_pt   waited;
    void                         *data;
    ngx_uint_t                    round;
} ngx_http_whatsapp_wait_t;


static void
ngx_http_whatsapp_wait_reply(redisAsyncContext *ac, void *reply, void *data)
{
    ngx_http_whatsapp_wait_t  *w = data;

    w->waited(w->data, w->round, reply);
}


ngx_int_t
ngx_http_whatsapp_wait_send(ngx_http_whatsapp_link_t *link,
    ngx_uint_t *generation, ngx_pool_t *pool, ngx_int_t replicas,
    ngx_msec_t timeout, ngx_uint_t round, ngx_http_whatsapp_waited_pt waited,
    void *data)
{
    u_char                    *p, num[2][NGX_INT_T_LEN];
    size_t                     lens[3];
    const char                *argv[3];
    ngx_http_whatsapp_wait_t  *w;

    w = ngx_palloc(pool, sizeof(ngx_http_whatsapp_wait_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->waited = waited;
    w->data = data;
    w->round = round;

    argv[0] = "WAIT";
    lens[0] = 4;

    p = ngx_sprintf(num[0], "%i", replicas);
    argv[1] = (const char *) num[0];
    lens[1] = p - num[0];

    p = ngx_sprintf(num[1], "%M", timeout);
    argv[2] = (const char *) num[1];
    lens[2] = p - num[1];

    return ngx_http_whatsapp_link_command(link, 3, argv, lens,
                                          ngx_http_whatsapp_wait_reply, w,
                                          generation);
}


void
ngx_http_whatsapp_wait_outcomes(ngx_http_whatsapp_pending_t *first,
    redisReply *rr, ngx_int_t wanted)
{
    ngx_int_t                     replicas;
    ngx_http_whatsapp_pending_t  *p;

    replicas = (rr && rr->type == REDIS_REPLY_INTEGER) ? rr->integer : -1;

    for (p = first; p; p = ngx_http_whatsapp_pending_next(p)) {
        if (p->res.outcome != NGX_HTTP_WHATSAPP_APPENDED) {
            continue;
        }

        if (rr == NULL) {
            p->res.outcome = NGX_HTTP_WHATSAPP_LOST;

        } else if (replicas < wanted) {
            p->res.outcome = NGX_HTTP_WHATSAPP_NOT_REPLICATED;
            p->res.replicas = replicas;
        }
    }
}
