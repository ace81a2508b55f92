/*
 * wa-relay: the webhook location.
 *
 * GET answers Meta's verification challenge.  POST reads the whole body,
 * checks its signature against every configured App Secret, splits it into
 * events and hands them to the FCALL of this turn (ngx_http_whatsapp_call.c);
 * the answer is 200 only once Redis has counted every one of its events,
 * 503 (with Retry-After) otherwise, so that Meta retries and nothing is lost.
 *
 * A request may be finalized while Redis still owes it a reply (timeout,
 * shutdown): its pool cleanup tells the call layer, and the reply then
 * finds the request's place in the call empty, never the request itself.
 */

#include "ngx_http_whatsapp_module.h"
#include "wa_query.h"


#define NGX_HTTP_WHATSAPP_RETRY      "5"
#define NGX_HTTP_WHATSAPP_TOKEN_MAX  1024

/*
 * A body this large may have kept the loop long enough for nginx's cached
 * time to be stale: the time is read again before its Redis timer is set,
 * or the timer would fire early.  Smaller bodies leave it as it is: the
 * reading costs more than they do.
 */
#define NGX_HTTP_WHATSAPP_LARGE_BODY  65536


typedef struct {
    ngx_http_whatsapp_pending_t  *pending;
    ngx_event_t                   timer;
    wa_sig_alg_t                  alg;
    u_char                        sig[WA_SIG_MAX];
    ngx_uint_t                    site;       /* its counters */
    ngx_msec_int_t                start_us;   /* the body read */
    uint32_t                      by_kind[NGX_HTTP_WHATSAPP_KINDS];
} ngx_http_whatsapp_ctx_t;


static ngx_int_t ngx_http_whatsapp_challenge(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf);
static ngx_int_t ngx_http_whatsapp_post(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf);
static void ngx_http_whatsapp_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_whatsapp_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_whatsapp_submit(ngx_http_request_t *r,
    ngx_http_whatsapp_ctx_t *ctx, wa_batch_t *batch);
static void ngx_http_whatsapp_done(void *data,
    ngx_http_whatsapp_result_t *res);
static void ngx_http_whatsapp_timeout(ngx_event_t *ev);
static void ngx_http_whatsapp_cleanup(void *data);
static ngx_int_t ngx_http_whatsapp_header_out(ngx_http_request_t *r,
    char *key, char *value);
static ngx_int_t ngx_http_whatsapp_send(ngx_http_request_t *r,
    ngx_uint_t status, char *text, size_t len);
static ngx_int_t ngx_http_whatsapp_reject(ngx_http_request_t *r,
    ngx_uint_t status, char *text);
static void ngx_http_whatsapp_finish(ngx_http_request_t *r,
    ngx_uint_t status);


ngx_int_t
ngx_http_whatsapp_handler(ngx_http_request_t *r)
{
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_whatsapp_module);

    if (r->method == NGX_HTTP_GET) {
        return ngx_http_whatsapp_challenge(r, wlcf);
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_whatsapp_post(r, wlcf);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "whatsapp webhook: method \"%V\" is not allowed",
                  &r->method_name);

    if (ngx_http_whatsapp_header_out(r, "Allow", "GET, POST") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_whatsapp_reject(r, NGX_HTTP_NOT_ALLOWED,
                                    "method not allowed\n");
}


static ngx_int_t
ngx_http_whatsapp_challenge(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf)
{
    char       *why, *p;
    ssize_t     n;
    char        buf[NGX_HTTP_WHATSAPP_TOKEN_MAX];

    why = NULL;

    n = wa_query_arg((char *) r->args.data, r->args.len, "hub.mode",
                     buf, sizeof(buf));

    if (wlcf->verify_token.len == 0) {
        why = "no whatsapp_verify_token_file is configured";

    } else if (n != 9 || ngx_strncmp(buf, "subscribe", 9) != 0) {
        why = "hub.mode is not \"subscribe\"";

    } else {
        n = wa_query_arg((char *) r->args.data, r->args.len,
                         "hub.verify_token", buf, sizeof(buf));

        if (n < 0 || !wa_secret_equal(buf, n, wlcf->verify_token.data,
                                      wlcf->verify_token.len))
        {
            why = "hub.verify_token does not match";
        }

        ngx_explicit_memzero(buf, sizeof(buf));
    }

    if (why == NULL) {
        n = wa_query_arg((char *) r->args.data, r->args.len,
                         "hub.challenge", buf, sizeof(buf));
        if (n < 0) {
            why = (n == -1) ? "no hub.challenge" : "hub.challenge too long";
        }
    }

    if (why) {
        ngx_http_whatsapp_count_reject(wlcf->site,
                                       NGX_HTTP_WHATSAPP_REJ_VERIFY_TOKEN);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "whatsapp webhook: verification refused: %s", why);

        return ngx_http_whatsapp_reject(r, NGX_HTTP_FORBIDDEN,
                                        "forbidden\n");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, n);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, buf, n);

    /* the challenge is the caller's text: never to be read as HTML */
    if (ngx_http_whatsapp_header_out(r, "X-Content-Type-Options", "nosniff")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_whatsapp_site_inc(wlcf->site, challenge_ok);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "whatsapp webhook: verification challenge answered");

    return ngx_http_whatsapp_send(r, NGX_HTTP_OK, p, n);
}


static ngx_table_elt_t *
ngx_http_whatsapp_header(ngx_http_request_t *r, char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_http_whatsapp_post(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf)
{
    ngx_int_t                 rc;
    ngx_table_elt_t          *h;
    ngx_pool_cleanup_t       *cln;
    ngx_http_whatsapp_ctx_t  *ctx;

    ngx_http_whatsapp_site_inc(wlcf->site, posts);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_whatsapp_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->site = wlcf->site;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_whatsapp_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_whatsapp_module);

    ctx->alg = WA_SIG_SHA256;
    h = ngx_http_whatsapp_header(r, "X-Hub-Signature-256");

    if (h == NULL && wlcf->sha1) {
        ctx->alg = WA_SIG_SHA1;
        h = ngx_http_whatsapp_header(r, "X-Hub-Signature");
    }

    /* rejected before the body is read: a forger costs us no HMAC */

    if (h == NULL) {
        ngx_http_whatsapp_count_reject(wlcf->site,
                                       NGX_HTTP_WHATSAPP_REJ_SIGNATURE_MISSING);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "whatsapp webhook: rejected: no X-Hub-Signature-256 "
                      "header");

        return ngx_http_whatsapp_reject(r, NGX_HTTP_UNAUTHORIZED,
                                        "signature required\n");
    }

    if (wa_sig_parse(ctx->alg, (char *) h->value.data, h->value.len,
                     ctx->sig)
        != 0)
    {
        ngx_http_whatsapp_count_reject(wlcf->site,
                                       NGX_HTTP_WHATSAPP_REJ_SIGNATURE_INVALID);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "whatsapp webhook: rejected: malformed %V header",
                      &h->key);

        return ngx_http_whatsapp_reject(r, NGX_HTTP_FORBIDDEN,
                                        "invalid signature\n");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_whatsapp_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * X-Hub-Signature-256 (or -1) against each app secret, in constant time:
 * NGX_OK and the secret counted, or NGX_DECLINED counted and logged
 */
static ngx_int_t
ngx_http_whatsapp_verify(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf, ngx_http_whatsapp_ctx_t *ctx,
    ngx_str_t *body)
{
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    wa_hmac_key_t               *key;
    ngx_http_whatsapp_secret_t  *secrets;

    secrets = wlcf->secrets->elts;

    for (i = 0; i < wlcf->secrets->nelts; i++) {
        key = (ctx->alg == WA_SIG_SHA256) ? secrets[i].sha256
                                          : secrets[i].sha1;

        rc = wa_hmac_verify(key, ctx->sig, body->data, body->len);

        if (rc == 1) {
            break;
        }

        if (rc < 0) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "whatsapp webhook: HMAC computation failed");
        }
    }

    if (i == wlcf->secrets->nelts) {
        ngx_http_whatsapp_count_reject(wlcf->site,
                                       NGX_HTTP_WHATSAPP_REJ_SIGNATURE_INVALID);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "whatsapp webhook: rejected: signature matches none "
                      "of %ui app secrets (%uz byte body)",
                      wlcf->secrets->nelts, body->len);

        return NGX_DECLINED;
    }

    ngx_http_whatsapp_site_add(wlcf->site,
                               offsetof(ngx_http_whatsapp_site_t, secret)
                               + i * sizeof(ngx_atomic_t), 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "whatsapp webhook: signature matched secret %ui \"%V\"",
                   i + 1, &secrets[i].file);

    return NGX_OK;
}


static void
ngx_http_whatsapp_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    int64_t                        now;
    ngx_str_t                      body;
    ngx_time_t                    *tp;
    wa_batch_t                     batch;
    ngx_http_whatsapp_ctx_t       *ctx;
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_whatsapp_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_whatsapp_module);
    ctx->start_us = ngx_http_whatsapp_now_us();

    if (ngx_http_whatsapp_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_whatsapp_verify(r, wlcf, ctx, &body) != NGX_OK) {
        ngx_http_finalize_request(r,
            ngx_http_whatsapp_send(r, NGX_HTTP_FORBIDDEN,
                                   "invalid signature\n", 18));
        return;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    if (ngx_http_whatsapp_json_split(&body, now, &batch) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: body not split into events: %s",
                      batch.error);
        rc = NGX_ERROR;

    } else {
        if (batch.error) {
            ngx_http_whatsapp_site_inc(wlcf->site, unparsed);

            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "whatsapp webhook: kept as \"unparsed\": %s",
                          batch.error);
        }

        if (body.len >= NGX_HTTP_WHATSAPP_LARGE_BODY) {
            ngx_time_update();
        }

        rc = ngx_http_whatsapp_submit(r, ctx, &batch);
    }

    ngx_http_whatsapp_json_done();

    if (rc != NGX_OK) {
        ngx_http_whatsapp_finish(r, NGX_HTTP_SERVICE_UNAVAILABLE);
    }
}


/* the body in one piece: as it is when nginx kept it in one buffer */
static ngx_int_t
ngx_http_whatsapp_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len, size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_str_set(body, "");
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    len = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        size = b->file_last - b->file_pos;

        n = ngx_read_file(b->file, p, size, b->file_pos);

        if (n != size) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "whatsapp webhook: read %z of %O bytes of the "
                          "body from \"%V\"", n, size, &b->file->name);
            return NGX_ERROR;
        }

        p += size;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_whatsapp_submit(ngx_http_request_t *r, ngx_http_whatsapp_ctx_t *ctx,
    wa_batch_t *batch)
{
    ngx_int_t                       rc;
    ngx_http_whatsapp_loc_conf_t   *wlcf;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_whatsapp_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_whatsapp_module);

    rc = ngx_http_whatsapp_call_add(wlcf, batch, ngx_http_whatsapp_done, r,
                                    &ctx->pending);

    if (rc == NGX_DECLINED) {
        ngx_http_whatsapp_count_reject(wlcf->site,
                                       NGX_HTTP_WHATSAPP_REJ_REDIS_UNAVAILABLE);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: redis is not connected, "
                      "answering 503 so that Meta retries");
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "whatsapp webhook: no memory for %uz events in a "
                      "call, answering 503", batch->nevents);
        return NGX_ERROR;
    }

    ngx_http_whatsapp_kinds_count(batch, ctx->by_kind);
    ngx_http_whatsapp_gauge_add(waiting, 1);

    ctx->timer.handler = ngx_http_whatsapp_timeout;
    ctx->timer.data = r;
    ctx->timer.log = r->connection->log;

    /* not cancelable: a graceful shutdown waits for this answer */
    ngx_add_timer(&ctx->timer, wmcf->redis.timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "whatsapp webhook: %uz events for redis",
                   batch->nevents);

    return NGX_OK;
}


/* why Redis did not take the events, counted and logged: Meta retries */
static void
ngx_http_whatsapp_refused(ngx_http_request_t *r, ngx_uint_t site,
    ngx_http_whatsapp_result_t *res)
{
    switch (res->outcome) {

    case NGX_HTTP_WHATSAPP_NOT_CONNECTED:
        ngx_http_whatsapp_count_reject(site,
                                    NGX_HTTP_WHATSAPP_REJ_REDIS_UNAVAILABLE);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: redis is not connected, "
                      "answering 503 so that Meta retries");
        break;

    case NGX_HTTP_WHATSAPP_LOST:
    case NGX_HTTP_WHATSAPP_NOT_SENT:
        ngx_http_whatsapp_count_reject(site,
                                       NGX_HTTP_WHATSAPP_REJ_REDIS_ERROR);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: %s, answering 503",
                      res->outcome == NGX_HTTP_WHATSAPP_LOST
                      ? "redis connection lost before the reply"
                      : "the call was not sent");
        break;

    case NGX_HTTP_WHATSAPP_REDIS_ERROR:
        ngx_http_whatsapp_count_reject(site,
                                       NGX_HTTP_WHATSAPP_REJ_REDIS_ERROR);
        ngx_http_whatsapp_redis_error(
            ngx_http_whatsapp_redis_denied(res->error.data, res->error.len)
            ? NGX_HTTP_WHATSAPP_ERR_DENIED : NGX_HTTP_WHATSAPP_ERR_REPLY);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: redis answered \"%V\", "
                      "answering 503%s", &res->error,
                      ngx_http_whatsapp_redis_denied(res->error.data,
                                                     res->error.len)
                      ? " (a permission the Redis user lacks: see "
                        "docs/redis.md)" : "");
        break;

    case NGX_HTTP_WHATSAPP_NOT_REPLICATED:
        ngx_http_whatsapp_count_reject(site,
                                       NGX_HTTP_WHATSAPP_REJ_NOT_REPLICATED);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: %ui events appended, but %i "
                      "replicas acknowledged them within "
                      "whatsapp_redis_wait's timeout, answering 503 so "
                      "that Meta retries", res->appended, res->replicas);
        break;

    default: /* NGX_HTTP_WHATSAPP_BAD_REPLY */
        ngx_http_whatsapp_count_reject(site,
                                       NGX_HTTP_WHATSAPP_REJ_REDIS_ERROR);
        ngx_http_whatsapp_redis_error(NGX_HTTP_WHATSAPP_ERR_REPLY);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "whatsapp webhook: unexpected reply (type %i) from "
                      "redis to %ui events, answering 503", res->type,
                      res->events);
    }
}


/* what the request's events came to in their call: the answer */
static void
ngx_http_whatsapp_done(void *data, ngx_http_whatsapp_result_t *res)
{
    ngx_http_request_t       *r;
    ngx_http_whatsapp_ctx_t  *ctx;

    r = data;

    ctx = ngx_http_get_module_ctx(r, ngx_http_whatsapp_module);
    ctx->pending = NULL;
    ngx_http_whatsapp_gauge_add(waiting, -1);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (res->outcome != NGX_HTTP_WHATSAPP_APPENDED) {
        ngx_http_whatsapp_refused(r, ctx->site, res);
        ngx_http_whatsapp_finish(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    /* the events appended; the others were duplicates */
    ngx_http_whatsapp_site_inc(ctx->site, accepted);
    ngx_http_whatsapp_kinds_add(ctx->site, ctx->by_kind);
    ngx_http_whatsapp_site_add(ctx->site,
                               offsetof(ngx_http_whatsapp_site_t, duplicates),
                               res->events - res->appended);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "whatsapp webhook: %ui appended, %ui duplicates",
                   res->appended, res->events - res->appended);

    ngx_http_whatsapp_finish(r, NGX_HTTP_OK);
}


static void
ngx_http_whatsapp_timeout(ngx_event_t *ev)
{
    ngx_http_request_t       *r;
    ngx_http_whatsapp_ctx_t  *ctx;

    r = ev->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_whatsapp_module);

    ngx_http_whatsapp_count_reject(ctx->site,
                                   NGX_HTTP_WHATSAPP_REJ_REDIS_TIMEOUT);
    ngx_http_whatsapp_redis_error(NGX_HTTP_WHATSAPP_ERR_TIMEOUT);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "whatsapp webhook: redis did not answer within "
                  "whatsapp_redis_timeout, answering 503");

    /* the call layer decides whether the link is to be reset */
    if (ctx->pending) {
        ngx_http_whatsapp_call_timeout(ctx->pending);
        ctx->pending = NULL;
        ngx_http_whatsapp_gauge_add(waiting, -1);
    }

    ngx_http_whatsapp_finish(r, NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_http_whatsapp_cleanup(void *data)
{
    ngx_http_whatsapp_ctx_t  *ctx = data;

    if (ctx->pending) {
        ngx_http_whatsapp_call_forget(ctx->pending);
        ctx->pending = NULL;
        ngx_http_whatsapp_gauge_add(waiting, -1);
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


/* a response header; key and value are static strings */
static ngx_int_t
ngx_http_whatsapp_header_out(ngx_http_request_t *r, char *key, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return NGX_OK;
}


static ngx_int_t
ngx_http_whatsapp_send(ngx_http_request_t *r, ngx_uint_t status, char *text,
    size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_whatsapp_header_out(r, "Retry-After",
                                        NGX_HTTP_WHATSAPP_RETRY)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = (u_char *) text;
    b->last = b->pos + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* an answer before the body was read: the body is discarded first */
static ngx_int_t
ngx_http_whatsapp_reject(ngx_http_request_t *r, ngx_uint_t status,
    char *text)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_whatsapp_send(r, status, text, ngx_strlen(text));
}


static void
ngx_http_whatsapp_finish(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_connection_t          *c;
    ngx_http_whatsapp_ctx_t   *ctx;
    ngx_http_whatsapp_site_t  *s;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_whatsapp_module);

    if (ctx && ctx->start_us) {
        s = ngx_http_whatsapp_site(ctx->site);

        if (s) {
            ngx_http_whatsapp_observe(&s->request,
                                      ngx_http_whatsapp_now_us()
                                      - ctx->start_us);
        }
    }

    if (status == NGX_HTTP_OK) {
        ngx_http_finalize_request(r,
            ngx_http_whatsapp_send(r, status, "ok\n", 3));

    } else {
        ngx_http_finalize_request(r,
            ngx_http_whatsapp_send(r, status, "retry later\n", 12));
    }

    ngx_http_run_posted_requests(c);
}
