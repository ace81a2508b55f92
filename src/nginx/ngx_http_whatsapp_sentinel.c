/*
 * wa-relay: the primary's address, asked of the sentinels on nginx's loop.
 *
 * One question at a time: the sentinels are asked in turn,
 * SENTINEL GET-MASTER-ADDR-BY-NAME, until one names the primary; the
 * answer (or that none did) goes back through the handler the Redis link
 * gave.  A sentinel given by name is resolved again on every question, by
 * nginx's resolver: nothing here ever blocks the loop.  Each sentinel has
 * whatsapp_redis_timeout to answer.
 */

#include "ngx_http_whatsapp_module.h"


typedef struct {
    redisAsyncContext                    *ac;
    ngx_resolver_ctx_t                   *rctx;
    ngx_event_t                           timer;
    ngx_uint_t                            next;     /* sentinel to ask */
    ngx_uint_t                            asking;
    ngx_http_whatsapp_sentinel_found_pt   found;
    void                                 *data;     /* found's */
    ngx_http_whatsapp_link_conf_t        *conf;
    ngx_log_t                            *log;
    u_char                                addr[NGX_SOCKADDR_STRLEN + 1];
    u_char                                primary[NGX_SOCKADDR_STRLEN + 1];
} ngx_http_whatsapp_sentinel_t;


static void ngx_http_whatsapp_sentinel_next(void);
static void ngx_http_whatsapp_sentinel_close(void);


static ngx_http_whatsapp_sentinel_t  ngx_http_whatsapp_sentinel;


static ngx_http_whatsapp_sentinel_addr_t *
ngx_http_whatsapp_sentinel_current(void)
{
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    return (ngx_http_whatsapp_sentinel_addr_t *) st->conf->sentinels->elts
           + (st->next - 1) % st->conf->sentinels->nelts;
}


/* the answer, or that none came: told once, the question closed */
static void
ngx_http_whatsapp_sentinel_done(ngx_str_t *addr, ngx_int_t port)
{
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    ngx_http_whatsapp_sentinel_close();
    st->asking = 0;

    st->found(st->data, addr, port);
}


static void
ngx_http_whatsapp_sentinel_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                         *rr = reply;
    ngx_str_t                           addr;
    ngx_int_t                           port;
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (ac != st->ac) {
        return;     /* a question given up (timeout, exit) */
    }

    sa = ngx_http_whatsapp_sentinel_current();

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING
        || rr->element[0]->len > NGX_SOCKADDR_STRLEN)
    {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "whatsapp redis: sentinel %V:%i knows no primary "
                      "\"%V\"%s%s", &sa->host, sa->port, &st->conf->master,
                      rr && rr->type == REDIS_REPLY_ERROR ? ": " : "",
                      rr && rr->type == REDIS_REPLY_ERROR ? rr->str : "");

        ngx_http_whatsapp_sentinel_next();
        return;
    }

    port = ngx_atoi((u_char *) rr->element[1]->str, rr->element[1]->len);

    addr.data = st->primary;
    addr.len = rr->element[0]->len;
    ngx_memcpy(st->primary, rr->element[0]->str, addr.len);
    st->primary[addr.len] = '\0';

    if (port <= 0 || port > 65535) {
        ngx_http_whatsapp_sentinel_next();
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                  "whatsapp redis: sentinel %V:%i names %V:%i the primary "
                  "of \"%V\"", &sa->host, sa->port, &addr, port,
                  &st->conf->master);

    ngx_http_whatsapp_sentinel_done(&addr, port);
}


static void
ngx_http_whatsapp_sentinel_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (ac != st->ac || status == REDIS_OK) {
        return;
    }

    sa = ngx_http_whatsapp_sentinel_current();

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "whatsapp redis: cannot connect to sentinel %V:%i: %s",
                  &sa->host, sa->port, ac->errstr);

    /* hiredis frees the context when this returns */
    st->ac = NULL;
    ngx_http_whatsapp_sentinel_next();
}


static void
ngx_http_whatsapp_sentinel_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    if (ac == st->ac) {
        /* gone before it answered: the reply callback had NULL */
        st->ac = NULL;
    }
}


/* a numeric address: hiredis connects without resolving anything */
static void
ngx_http_whatsapp_sentinel_connect(ngx_str_t *addr, ngx_int_t port)
{
    redisAsyncContext                  *ac;
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    sa = ngx_http_whatsapp_sentinel_current();

    ac = redisAsyncConnect((char *) addr->data, (int) port);

    if (ac == NULL || ac->err
        || ngx_http_whatsapp_hiredis_attach(ac, st->log) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "whatsapp redis: cannot connect to sentinel %V:%i: %s",
                      &sa->host, sa->port,
                      ac && ac->err ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_whatsapp_sentinel_next();
        return;
    }

    st->ac = ac;

    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_whatsapp_sentinel_disconnected);
    redisAsyncSetConnectCallback(ac, ngx_http_whatsapp_sentinel_connected);

    /* queued until the connection is made */
    if (redisAsyncCommand(ac, ngx_http_whatsapp_sentinel_reply, NULL,
                          "SENTINEL get-master-addr-by-name %b",
                          st->conf->master.data, st->conf->master.len)
        != REDIS_OK)
    {
        ngx_http_whatsapp_sentinel_next();
    }
}


static void
ngx_http_whatsapp_sentinel_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_str_t                           addr;
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    sa = ngx_http_whatsapp_sentinel_current();
    st->rctx = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "whatsapp redis: sentinel %V could not be resolved "
                      "(%i: %s)", &sa->host, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        ngx_http_whatsapp_sentinel_next();
        return;
    }

    addr.data = st->addr;
    addr.len = ngx_sock_ntop(ctx->addrs[0].sockaddr, ctx->addrs[0].socklen,
                             st->addr, NGX_SOCKADDR_STRLEN, 0);
    st->addr[addr.len] = '\0';

    ngx_resolve_name_done(ctx);

    ngx_http_whatsapp_sentinel_connect(&addr, sa->port);
}


/* the next sentinel, or the end of the round: none named the primary */
static void
ngx_http_whatsapp_sentinel_next(void)
{
    ngx_resolver_ctx_t                 *ctx;
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    ngx_http_whatsapp_sentinel_close();

    if (st->next == st->conf->sentinels->nelts) {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "whatsapp redis: no sentinel named the primary of "
                      "\"%V\"", &st->conf->master);
        ngx_http_whatsapp_sentinel_done(NULL, 0);
        return;
    }

    st->next++;
    sa = ngx_http_whatsapp_sentinel_current();

    ngx_add_timer(&st->timer, st->conf->timeout);

    if (sa->numeric) {
        ngx_http_whatsapp_sentinel_connect(&sa->host, sa->port);
        return;
    }

    ctx = ngx_resolve_start(st->conf->resolver, NULL);
    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "whatsapp redis: cannot resolve sentinel %V",
                      &sa->host);
        ngx_http_whatsapp_sentinel_next();
        return;
    }

    ctx->name = sa->host;
    ctx->handler = ngx_http_whatsapp_sentinel_resolved;
    ctx->data = st;
    ctx->timeout = st->conf->resolver_timeout;

    st->rctx = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        st->rctx = NULL;
        ngx_http_whatsapp_sentinel_next();
    }
}


static void
ngx_http_whatsapp_sentinel_timeout(ngx_event_t *ev)
{
    ngx_http_whatsapp_sentinel_t       *st = &ngx_http_whatsapp_sentinel;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    sa = ngx_http_whatsapp_sentinel_current();

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "whatsapp redis: sentinel %V:%i did not answer within "
                  "whatsapp_redis_timeout", &sa->host, sa->port);

    ngx_http_whatsapp_sentinel_next();
}


/* what the question in hand holds: its timer, a resolution, a connection */
static void
ngx_http_whatsapp_sentinel_close(void)
{
    redisAsyncContext             *ac;
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    if (st->rctx) {
        ngx_resolve_name_done(st->rctx);
        st->rctx = NULL;
    }

    ac = st->ac;
    st->ac = NULL;

    /*
     * freed even with its question unanswered (a sentinel that hangs);
     * inside one of its callbacks, hiredis frees it once that returns
     */
    if (ac && !(ac->c.flags & REDIS_FREEING)) {
        redisAsyncFree(ac);
    }
}


void
ngx_http_whatsapp_sentinel_ask(ngx_http_whatsapp_link_conf_t *conf,
    ngx_log_t *log, ngx_http_whatsapp_sentinel_found_pt found, void *data)
{
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    if (st->asking) {
        return;
    }

    st->conf = conf;
    st->log = log;
    st->found = found;
    st->data = data;
    st->next = 0;
    st->asking = 1;

    st->timer.handler = ngx_http_whatsapp_sentinel_timeout;
    st->timer.data = st;
    st->timer.log = log;
    st->timer.cancelable = 1;

    ngx_http_whatsapp_sentinel_next();
}


void
ngx_http_whatsapp_sentinel_exit(void)
{
    ngx_http_whatsapp_sentinel_t  *st = &ngx_http_whatsapp_sentinel;

    if (st->asking) {
        ngx_http_whatsapp_sentinel_close();
        st->asking = 0;
    }
}
