/*
 * wa-relay: the call layer's parts, for its files only.
 *
 *   ngx_http_whatsapp_call.c    the calls of a turn: open, copy, send,
 *                               reply, answer (one per partition)
 *   ngx_http_whatsapp_fanout.c  a request: its partitions, and a request
 *                               over several of them as a group of parts
 *   ngx_http_whatsapp_wait.c    WAIT after a call, and what it says
 *
 * Each calls only the ones below it: fanout -> call -> wait.
 *
 * The FCALL's encoding is src/core/wa_ingest.c's.
 */

#ifndef _NGX_HTTP_WHATSAPP_CALL_H_INCLUDED_
#define _NGX_HTTP_WHATSAPP_CALL_H_INCLUDED_


#include "ngx_http_whatsapp_module.h"


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
    wa_ingest_req_t              **last;
    wa_ingest_call_t               ingest;    /* what the FCALL holds */
    size_t                         size;
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


/* the request after p in its call, or NULL */
#define ngx_http_whatsapp_pending_next(p)                                     \
    ((p)->req.next == NULL ? NULL                                             \
     : (ngx_http_whatsapp_pending_t *) ((u_char *) (p)->req.next              \
                             - offsetof(ngx_http_whatsapp_pending_t, req)))


/*
 * The events of batch join the call of partition part: all of them
 * (part_of NULL), or those whose part_of[i] is part.
 */
ngx_int_t ngx_http_whatsapp_call_part(ngx_http_whatsapp_loc_conf_t *wlcf,
    ngx_uint_t part, wa_batch_t *batch, const uint16_t *part_of,
    ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending);

/* a request of the call gave up waiting: a call sent resets its link */
void ngx_http_whatsapp_call_late(ngx_http_whatsapp_call_t *call);

/*
 * ngx_http_whatsapp_wait.c: WAIT replicas timeout queued on the link, and
 * waited(data, round, reply) told when it answers (reply NULL: the link
 * was lost first).  wait_outcomes: what the answer makes of the requests
 * appended, wanted replicas being what was asked.
 */
typedef void (*ngx_http_whatsapp_waited_pt)(void *data, ngx_uint_t round,
    redisReply *reply);

ngx_int_t ngx_http_whatsapp_wait_send(ngx_http_whatsapp_link_t *link,
    ngx_uint_t *generation, ngx_pool_t *pool, ngx_int_t replicas,
    ngx_msec_t timeout, ngx_uint_t round, ngx_http_whatsapp_waited_pt waited,
    void *data);
void ngx_http_whatsapp_wait_outcomes(ngx_http_whatsapp_pending_t *first,
    redisReply *rr, ngx_int_t wanted);


#endif /* _NGX_HTTP_WHATSAPP_CALL_H_INCLUDED_ */
