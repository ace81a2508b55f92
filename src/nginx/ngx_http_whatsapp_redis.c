/*
 * wa-relay: a Redis link of a worker process: one connection, made on
 * nginx's own loop (ngx_http_whatsapp_hiredis.c), found through the
 * sentinels when they are configured (ngx_http_whatsapp_sentinel.c).  A
 * worker has one link, or one per primary of a Redis Cluster
 * (ngx_http_whatsapp_cluster.c routes the calls among them).
 *
 * While there is no connection, callers are told at once (they answer
 * 503), and a cancelable timer reconnects with exponential backoff.  A
 * caller that wants Redis to start on what waits before the turn ends
 * writes it at once (ngx_http_whatsapp_link_write).
 *
 * A new connection is not ready when its socket is: its preamble (AUTH,
 * SELECT, FUNCTION LOAD, and ROLE behind sentinels) goes first, and only
 * once Redis has answered every part of it without an error is the link
 * up.  A command sent earlier would run unauthenticated, in database 0,
 * without the function or on a replica, and a reply to it could be a 200
 * for events written in the wrong place.  The link tells its user when it
 * comes up or goes down through the handler it was given, so that calls
 * made meanwhile wait for it.
 */

#include "ngx_http_whatsapp_module.h"


typedef enum {
    NGX_HTTP_WHATSAPP_REDIS_DOWN = 0,
    NGX_HTTP_WHATSAPP_REDIS_CONNECTING,
    NGX_HTTP_WHATSAPP_REDIS_PREAMBLE,
    NGX_HTTP_WHATSAPP_REDIS_UP
} ngx_http_whatsapp_redis_state_e;


struct ngx_http_whatsapp_link_s {
    redisAsyncContext                *ac;
    ngx_http_whatsapp_redis_state_e   state;
    ngx_uint_t                        preamble;   /* replies still owed */
    ngx_event_t                       reconnect;
    ngx_msec_t                        backoff;
    ngx_uint_t                        generation;
    ngx_uint_t                        exiting;
    ngx_uint_t                        asking;     /* the sentinels */
    ngx_str_t                         addr;       /* of the primary */
    ngx_int_t                         port;
    u_char                            primary[NGX_SOCKADDR_STRLEN + 1];
    ngx_log_t                        *log;
    ngx_http_whatsapp_link_conf_t    *conf;
    u_char                            why[256];   /* the link's state */
    size_t                            why_len;
    ngx_http_whatsapp_link_changed_pt changed;
};


#define NGX_HTTP_WHATSAPP_BACKOFF_MIN  100


static void ngx_http_whatsapp_redis_connect(ngx_http_whatsapp_link_t *rd);
static void ngx_http_whatsapp_redis_primary(void *data, ngx_str_t *addr,
    ngx_int_t port);
static void ngx_http_whatsapp_redis_open(ngx_http_whatsapp_link_t *rd);
static void ngx_http_whatsapp_redis_schedule(ngx_http_whatsapp_link_t *rd);
static void ngx_http_whatsapp_redis_down(ngx_http_whatsapp_link_t *rd);


static ngx_str_t  ngx_http_whatsapp_default_user = ngx_string("default");


/* the link's state in words, for whatsapp_health; and its error counted */
static void
ngx_http_whatsapp_redis_why(ngx_http_whatsapp_link_t *rd, ngx_int_t error,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    rd->why_len = ngx_vslprintf(rd->why, rd->why + sizeof(rd->why), fmt,
                                args) - rd->why;
    va_end(args);

    if (error >= 0) {
        rd->conf->error(error);
    }
}

/* redis/wa_ingest.lua, made into a C string by the config script */
static const char  ngx_http_whatsapp_ingest_lua[] =
#include "ngx_http_whatsapp_lua.h"
    ;


/*
 * A reply to a part of the preamble.  An error drops the connection: no
 * use going on with one that cannot authenticate, select its database or
 * hold the function.  The last good reply brings the link up.
 */
static void
ngx_http_whatsapp_redis_preamble_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                 *rr = reply;
    ngx_http_whatsapp_link_t  *rd;

    rd = ac->data;

    /*
     * NULL: the connection is gone, and its disconnect callback says so;
     * or it is being dropped for an earlier part's error
     */
    if (rr == NULL || ac != rd->ac
        || (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
    {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_http_whatsapp_redis_why(rd, 
            ngx_http_whatsapp_redis_denied((u_char *) rr->str, rr->len)
            ? NGX_HTTP_WHATSAPP_ERR_DENIED : NGX_HTTP_WHATSAPP_ERR_REPLY,
            "%s failed on %V:%i: %s", (char *) data, &rd->addr, rd->port,
            rr->str);

        if (ngx_http_whatsapp_redis_denied((u_char *) rr->str, rr->len)) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "whatsapp redis: %s refused to the Redis user "
                          "\"%V\": %s; docs/redis.md lists what the module "
                          "needs, requests are answered 503 until then",
                          (char *) data,
                          rd->conf->user.len
                          ? &rd->conf->user : &ngx_http_whatsapp_default_user,
                          rr->str);

        } else {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "whatsapp redis: %s failed: %s, dropping the "
                          "connection", (char *) data, rr->str);
        }

        redisAsyncDisconnect(ac);
        return;
    }

    if (rd->state != NGX_HTTP_WHATSAPP_REDIS_PREAMBLE || --rd->preamble) {
        return;
    }

    rd->state = NGX_HTTP_WHATSAPP_REDIS_UP;
    ngx_http_whatsapp_redis_why(rd, -1, "connected to %V:%i, function loaded",
                                &rd->addr, rd->port);

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: connected to %V:%i, database %i, "
                  "function loaded", &rd->addr, rd->port,
                  rd->conf->database);

    rd->changed(rd, 1);
}


/* ROLE, in the preamble behind sentinels: a replica is dropped */
static void
ngx_http_whatsapp_redis_role_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                 *rr = reply;
    ngx_http_whatsapp_link_t  *rd;

    rd = ac->data;

    if (rr == NULL || ac != rd->ac || rr->type == REDIS_REPLY_ERROR) {
        ngx_http_whatsapp_redis_preamble_reply(ac, reply, "ROLE");
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || rr->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(rr->element[0]->str, "master") != 0)
    {
        ngx_http_whatsapp_redis_why(rd, NGX_HTTP_WHATSAPP_ERR_REPLICA,
                                    "%V:%i is not the primary", &rd->addr,
                                    rd->port);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: %V:%i is not the primary (%s), "
                      "asking the %s again", &rd->addr, rd->port,
                      rr->type == REDIS_REPLY_ARRAY && rr->elements
                      && rr->element[0]->type == REDIS_REPLY_STRING
                      ? rr->element[0]->str : "no role",
                      rd->conf->cluster ? "cluster" : "sentinels");

        redisAsyncDisconnect(ac);
        return;
    }

    ngx_http_whatsapp_redis_preamble_reply(ac, reply, "ROLE");
}


/* FUNCTION LOAD on a connection that is up, after "Function not found" */
static void
ngx_http_whatsapp_redis_load_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                *rr = reply;
    ngx_http_whatsapp_link_t  *rd;

    rd = ac->data;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: FUNCTION LOAD failed on %V:%i: %s",
                      &rd->addr, rd->port, rr->str);
    }
}


static ngx_int_t
ngx_http_whatsapp_redis_load(ngx_http_whatsapp_link_t *rd,
    redisCallbackFn *fn)
{
    return redisAsyncCommand(rd->ac, fn, "FUNCTION LOAD",
                             "FUNCTION LOAD REPLACE %b",
                             ngx_http_whatsapp_ingest_lua,
                             sizeof(ngx_http_whatsapp_ingest_lua) - 1)
           == REDIS_OK ? NGX_OK : NGX_ERROR;
}


void
ngx_http_whatsapp_link_load_functions(ngx_http_whatsapp_link_t *rd)
{
    if (rd->state == NGX_HTTP_WHATSAPP_REDIS_UP) {
        (void) ngx_http_whatsapp_redis_load(rd,
                                       ngx_http_whatsapp_redis_load_reply);
    }
}


/*
 * An error that no retry mends: the credentials, or a permission the ACL
 * user lacks (a command or a key refused, itself or inside a function)
 */
ngx_uint_t
ngx_http_whatsapp_redis_denied(const u_char *error, size_t len)
{
    return wa_reply_kind((const char *) error, len) == WA_REPLY_DENIED;
}


/* AUTH, SELECT and FUNCTION LOAD, ahead of anything else on the link */
static ngx_int_t
ngx_http_whatsapp_redis_preamble(ngx_http_whatsapp_link_t *rd,
    redisAsyncContext *ac)
{
    ngx_http_whatsapp_link_conf_t  *conf;

    conf = rd->conf;

    rd->state = NGX_HTTP_WHATSAPP_REDIS_PREAMBLE;
    rd->preamble = 1;

    if (conf->user.len) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "AUTH", "AUTH %b %b", conf->user.data,
                              conf->user.len, conf->password.data,
                              conf->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;

    } else if (conf->password.len) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "AUTH", "AUTH %b", conf->password.data,
                              conf->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    if (conf->database) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "SELECT", "SELECT %d", (int) conf->database)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    /*
     * behind sentinels, or in a Cluster: the address named may be a
     * replica by now
     */
    if (conf->sentinels || conf->cluster) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_role_reply, NULL,
                              "ROLE")
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    return ngx_http_whatsapp_redis_load(rd,
                                   ngx_http_whatsapp_redis_preamble_reply);
}


static void
ngx_http_whatsapp_redis_connected(const redisAsyncContext *cac, int status)
{
    redisAsyncContext         *ac;
    ngx_http_whatsapp_link_t  *rd;

    rd = cac->data;

    if (status != REDIS_OK) {
        ngx_http_whatsapp_redis_why(rd, NGX_HTTP_WHATSAPP_ERR_CONNECT,
                                    "cannot connect to %V:%i: %s",
                                    &rd->addr, rd->port, cac->errstr);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: cannot connect to %V:%i: %s",
                      &rd->addr, rd->port, cac->errstr);

        /* hiredis frees the context when this returns */
        if (rd->ac == cac) {
            rd->ac = NULL;
            ngx_http_whatsapp_redis_down(rd);
        }

        ngx_http_whatsapp_redis_schedule(rd);
        return;
    }

    ac = rd->ac;

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "whatsapp redis: connection to %V:%i made, sending its "
                  "preamble", &rd->addr, rd->port);

    rd->conf->connected();
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;
    ngx_http_whatsapp_redis_why(rd, -1, "connected to %V:%i, loading the "
                                "function", &rd->addr, rd->port);

    if (ngx_http_whatsapp_redis_preamble(rd, ac) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "whatsapp redis: no memory for the preamble, "
                      "dropping the connection");
        redisAsyncDisconnect(ac);
    }
}


static void
ngx_http_whatsapp_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_whatsapp_link_t  *rd;

    rd = ac->data;

    if (status != REDIS_OK) {
        ngx_http_whatsapp_redis_why(rd, NGX_HTTP_WHATSAPP_ERR_LOST,
                                    "connection to %V:%i lost: %s",
                                    &rd->addr, rd->port, ac->errstr);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: connection to %V:%i lost: %s",
                      &rd->addr, rd->port, ac->errstr);

    } else {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "whatsapp redis: connection closed");
    }

    if (rd->ac == ac) {
        rd->ac = NULL;
        ngx_http_whatsapp_redis_down(rd);
    }

    ngx_http_whatsapp_redis_schedule(rd);
}


/* the link is gone: calls that waited for it are told */
static void
ngx_http_whatsapp_redis_down(ngx_http_whatsapp_link_t *rd)
{
    if (rd->state == NGX_HTTP_WHATSAPP_REDIS_DOWN) {
        return;
    }

    rd->state = NGX_HTTP_WHATSAPP_REDIS_DOWN;

    if (!rd->exiting) {
        rd->changed(rd, 0);
    }
}


static void
ngx_http_whatsapp_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_whatsapp_redis_connect(ev->data);
}


static void
ngx_http_whatsapp_redis_schedule(ngx_http_whatsapp_link_t *rd)
{
    if (rd->exiting || rd->ac || rd->asking || rd->reconnect.timer_set) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: reconnecting to %V:%i in %M ms",
                  &rd->addr, rd->port, rd->backoff);

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff = ngx_min(rd->backoff * 2, rd->conf->backoff_max);
}


/* behind sentinels, the primary is asked for on every connect */
static void
ngx_http_whatsapp_redis_connect(ngx_http_whatsapp_link_t *rd)
{
    if (rd->conf->sentinels == NULL) {
        ngx_http_whatsapp_redis_open(rd);
        return;
    }

    rd->asking = 1;
    rd->state = NGX_HTTP_WHATSAPP_REDIS_CONNECTING;
    ngx_http_whatsapp_redis_why(rd, -1, "asking the sentinels for \"%V\"",
                                &rd->conf->master);

    ngx_http_whatsapp_sentinel_ask(rd->conf, rd->log,
                                   ngx_http_whatsapp_redis_primary, rd);
}


static void
ngx_http_whatsapp_redis_primary(void *data, ngx_str_t *addr, ngx_int_t port)
{
    ngx_http_whatsapp_link_t  *rd = data;

    rd->asking = 0;

    if (rd->exiting) {
        return;
    }

    if (addr == NULL) {
        ngx_http_whatsapp_redis_why(rd, NGX_HTTP_WHATSAPP_ERR_CONNECT,
                                    "no sentinel named a primary for \"%V\"",
                                    &rd->conf->master);
        ngx_http_whatsapp_redis_down(rd);
        ngx_http_whatsapp_redis_schedule(rd);
        return;
    }

    rd->addr.data = rd->primary;
    rd->addr.len = ngx_min(addr->len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(rd->primary, addr->data, rd->addr.len);
    rd->primary[rd->addr.len] = '\0';
    rd->port = port;

    ngx_http_whatsapp_redis_open(rd);
}


static void
ngx_http_whatsapp_redis_open(ngx_http_whatsapp_link_t *rd)
{
    redisAsyncContext  *ac;

    /* the address is numeric or a path: connecting never resolves */
    if (rd->port) {
        ac = redisAsyncConnect((char *) rd->addr.data, (int) rd->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rd->addr.data);
    }

    if (ac == NULL || ac->err) {
        ngx_http_whatsapp_redis_why(rd, NGX_HTTP_WHATSAPP_ERR_CONNECT,
                                    "cannot connect to %V:%i: %s",
                                    &rd->addr, rd->port,
                                    ac ? ac->errstr : "out of memory");

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: cannot connect to %V:%i: %s",
                      &rd->addr, rd->port,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_whatsapp_redis_schedule(rd);
        return;
    }

    if (ngx_http_whatsapp_hiredis_attach(ac, rd->log) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_whatsapp_redis_schedule(rd);
        return;
    }

    ac->data = rd;
    rd->ac = ac;
    rd->state = NGX_HTTP_WHATSAPP_REDIS_CONNECTING;
    rd->generation++;
    ngx_http_whatsapp_redis_why(rd, -1, "connecting to %V:%i", &rd->addr,
                                rd->port);

    /* the connect callback waits for the first write event: set it last */
    redisAsyncSetDisconnectCallback(ac, ngx_http_whatsapp_redis_disconnected);
    redisAsyncSetConnectCallback(ac, ngx_http_whatsapp_redis_connected);
}


/*
 * A link to addr:port (the configured one, or a primary of the Cluster);
 * changed(link, up) is told when it comes up or goes down.  The address
 * is copied.  Links are freed with the process only.
 */
ngx_http_whatsapp_link_t *
ngx_http_whatsapp_link_open(ngx_cycle_t *cycle,
    ngx_http_whatsapp_link_conf_t *conf, ngx_str_t *addr, ngx_int_t port,
    ngx_http_whatsapp_link_changed_pt changed)
{
    ngx_http_whatsapp_link_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_whatsapp_link_t), cycle->log);
    if (rd == NULL) {
        return NULL;
    }

    rd->changed = changed;
    rd->conf = conf;
    rd->addr.data = rd->primary;
    rd->addr.len = ngx_min(addr->len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(rd->primary, addr->data, rd->addr.len);
    rd->primary[rd->addr.len] = '\0';
    rd->port = port;
    rd->log = cycle->log;
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;

    rd->reconnect.handler = ngx_http_whatsapp_redis_reconnect_handler;
    rd->reconnect.data = rd;
    rd->reconnect.log = cycle->log;

    /* a graceful shutdown must not wait for a reconnection */
    rd->reconnect.cancelable = 1;

    rd->exiting = 1;
    ngx_http_whatsapp_link_start(rd);

    return rd;
}


/*
 * The link stops: its connection is freed (commands waiting get a NULL
 * reply) and it does not reconnect.  The link itself stays: callers may
 * hold it until their replies come; link_start makes it connect again.
 */
void
ngx_http_whatsapp_link_stop(ngx_http_whatsapp_link_t *rd)
{
    redisAsyncContext  *ac;

    rd->exiting = 1;

    if (rd->asking) {
        ngx_http_whatsapp_sentinel_exit();
        rd->asking = 0;
    }

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    ac = rd->ac;
    rd->ac = NULL;
    rd->state = NGX_HTTP_WHATSAPP_REDIS_DOWN;

    if (ac) {
        redisAsyncFree(ac);
    }
}


void
ngx_http_whatsapp_link_start(ngx_http_whatsapp_link_t *rd)
{
    if (!rd->exiting) {
        return;
    }

    rd->exiting = 0;
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;

    ngx_http_whatsapp_redis_connect(rd);
}


/* its address: 1 if it is addr:port */
ngx_uint_t
ngx_http_whatsapp_link_is(ngx_http_whatsapp_link_t *rd, ngx_str_t *addr,
    ngx_int_t port)
{
    return rd->port == port && rd->addr.len == addr->len
           && ngx_strncmp(rd->addr.data, addr->data, addr->len) == 0;
}


/* the link's state in words, for whatsapp_health */
u_char *
ngx_http_whatsapp_link_why(ngx_http_whatsapp_link_t *rd, u_char *p,
    u_char *last)
{
    p = ngx_slprintf(p, last, "%*s", rd->why_len, rd->why);

    if (rd->reconnect.timer_set) {
        p = ngx_slprintf(p, last, "; trying again in %M ms",
                         (ngx_msec_t) (rd->reconnect.timer.key
                                       - ngx_current_msec));
    }

    return p;
}


/*
 * NGX_OK: commands can be sent; NGX_AGAIN: a connection is being made or
 * is sending its preamble; NGX_DECLINED: none, until the next reconnect.
 */
ngx_int_t
ngx_http_whatsapp_link_state(ngx_http_whatsapp_link_t *rd)
{
    redisAsyncContext  *ac;

    ac = rd->ac;

    if (rd->asking) {
        return NGX_AGAIN;
    }

    if (ac == NULL || (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING))) {
        return NGX_DECLINED;
    }

    return rd->state == NGX_HTTP_WHATSAPP_REDIS_UP ? NGX_OK : NGX_AGAIN;
}


ngx_int_t
ngx_http_whatsapp_link_command(ngx_http_whatsapp_link_t *rd, int argc,
    const char **argv, const size_t *argvlen, redisCallbackFn *fn,
    void *data, ngx_uint_t *generation)
{
    if (ngx_http_whatsapp_link_state(rd) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(rd->ac, fn, data, argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    *generation = rd->generation;

    return NGX_OK;
}


/*
 * What waits is written now rather than at the end of the turn.  A failed
 * write answers every command queued with a NULL reply: callers write
 * before they queue a command of their own, never after.
 */
void
ngx_http_whatsapp_link_write(ngx_http_whatsapp_link_t *rd)
{
    if (rd->ac) {
        ngx_http_whatsapp_hiredis_write(rd->ac);
    }
}


void
ngx_http_whatsapp_link_reset(ngx_http_whatsapp_link_t *rd,
    ngx_uint_t generation, const char *reason)
{
    redisAsyncContext  *ac;

    ac = rd->ac;

    if (ac == NULL || generation != rd->generation) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "whatsapp redis: dropping the connection to %V:%i: %s",
                  &rd->addr, rd->port, reason);
    ngx_http_whatsapp_redis_why(rd, -1, "connection to %V:%i dropped: %s",
                                &rd->addr, rd->port, reason);

    rd->ac = NULL;

    /* every command still waiting gets a NULL reply: its request, a 503 */
    redisAsyncFree(ac);
    ngx_http_whatsapp_redis_down(rd);

    ngx_http_whatsapp_redis_schedule(rd);
}
