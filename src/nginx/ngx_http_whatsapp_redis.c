/*
 * wa-relay: the Redis link of a worker process: one connection, made on
 * nginx's own loop (ngx_http_whatsapp_hiredis.c), found through the
 * sentinels when they are configured (ngx_http_whatsapp_sentinel.c).
 *
 * While there is no connection, callers are told at once (they answer
 * 503), and a cancelable timer reconnects with exponential backoff.  A
 * caller that wants Redis to start on what waits before the turn ends
 * writes it at once (ngx_http_whatsapp_redis_write).
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


typedef struct {
    redisAsyncContext                *ac;
    ngx_http_whatsapp_redis_state_e   state;
    ngx_uint_t                        preamble;   /* replies still owed */
    ngx_http_whatsapp_redis_link_pt   link;
    ngx_event_t                       reconnect;
    ngx_msec_t                        backoff;
    ngx_uint_t                        generation;
    ngx_uint_t                        exiting;
    ngx_uint_t                        asking;     /* the sentinels */
    ngx_str_t                         addr;       /* of the primary */
    ngx_int_t                         port;
    u_char                            primary[NGX_SOCKADDR_STRLEN + 1];
    ngx_log_t                        *log;
    ngx_http_whatsapp_main_conf_t    *wmcf;
    u_char                            why[256];   /* the link's state */
    size_t                            why_len;
} ngx_http_whatsapp_redis_t;


#define NGX_HTTP_WHATSAPP_BACKOFF_MIN  100


static void ngx_http_whatsapp_redis_connect(void);
static void ngx_http_whatsapp_redis_primary(ngx_str_t *addr, ngx_int_t port);
static void ngx_http_whatsapp_redis_open(void);
static void ngx_http_whatsapp_redis_schedule(void);
static void ngx_http_whatsapp_redis_down(void);


static ngx_http_whatsapp_redis_t  ngx_http_whatsapp_redis;
static ngx_str_t  ngx_http_whatsapp_default_user = ngx_string("default");


/* the link's state in words, for whatsapp_health; and its error counted */
static void
ngx_http_whatsapp_redis_why(ngx_int_t error, const char *fmt, ...)
{
    va_list                     args;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    va_start(args, fmt);
    rd->why_len = ngx_vslprintf(rd->why, rd->why + sizeof(rd->why), fmt,
                                args) - rd->why;
    va_end(args);

    if (error >= 0) {
        ngx_http_whatsapp_redis_error(error);
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
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    /* NULL: the connection is gone, and its disconnect callback says so */
    if (rr == NULL || ac != rd->ac) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_http_whatsapp_redis_why(
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
                          rd->wmcf->user.len
                          ? &rd->wmcf->user : &ngx_http_whatsapp_default_user,
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
    ngx_http_whatsapp_redis_why(-1, "connected to %V:%i, function loaded",
                                &rd->addr, rd->port);

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: connected to %V:%i, database %i, "
                  "function loaded", &rd->addr, rd->port,
                  rd->wmcf->database);

    rd->link(1);
}


/* ROLE, in the preamble behind sentinels: a replica is dropped */
static void
ngx_http_whatsapp_redis_role_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                 *rr = reply;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (rr == NULL || ac != rd->ac || rr->type == REDIS_REPLY_ERROR) {
        ngx_http_whatsapp_redis_preamble_reply(ac, reply, "ROLE");
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || rr->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(rr->element[0]->str, "master") != 0)
    {
        ngx_http_whatsapp_redis_why(NGX_HTTP_WHATSAPP_ERR_REPLICA,
                                    "%V:%i is not the primary", &rd->addr,
                                    rd->port);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: %V:%i is not the primary (%s), "
                      "asking the sentinels again", &rd->addr, rd->port,
                      rr->type == REDIS_REPLY_ARRAY && rr->elements
                      && rr->element[0]->type == REDIS_REPLY_STRING
                      ? rr->element[0]->str : "no role");

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
    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_whatsapp_redis.log, 0,
                      "whatsapp redis: FUNCTION LOAD failed: %s", rr->str);
    }
}


static ngx_int_t
ngx_http_whatsapp_redis_load(redisCallbackFn *fn)
{
    return redisAsyncCommand(ngx_http_whatsapp_redis.ac, fn, "FUNCTION LOAD",
                             "FUNCTION LOAD REPLACE %b",
                             ngx_http_whatsapp_ingest_lua,
                             sizeof(ngx_http_whatsapp_ingest_lua) - 1)
           == REDIS_OK ? NGX_OK : NGX_ERROR;
}


void
ngx_http_whatsapp_redis_load_functions(void)
{
    if (ngx_http_whatsapp_redis.state == NGX_HTTP_WHATSAPP_REDIS_UP) {
        (void) ngx_http_whatsapp_redis_load(
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
    static ngx_str_t  prefixes[] = {
        ngx_string("NOPERM"),
        ngx_string("WRONGPASS"),
        ngx_string("NOAUTH"),
        ngx_string("ERR The user executing the script can't")
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (len >= prefixes[i].len
            && ngx_strncmp(error, prefixes[i].data, prefixes[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* AUTH, SELECT and FUNCTION LOAD, ahead of anything else on the link */
static ngx_int_t
ngx_http_whatsapp_redis_preamble(redisAsyncContext *ac)
{
    ngx_http_whatsapp_redis_t      *rd;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    rd = &ngx_http_whatsapp_redis;
    wmcf = rd->wmcf;

    rd->state = NGX_HTTP_WHATSAPP_REDIS_PREAMBLE;
    rd->preamble = 1;

    if (wmcf->user.len) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "AUTH", "AUTH %b %b", wmcf->user.data,
                              wmcf->user.len, wmcf->password.data,
                              wmcf->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;

    } else if (wmcf->password.len) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "AUTH", "AUTH %b", wmcf->password.data,
                              wmcf->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    if (wmcf->database) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_preamble_reply,
                              "SELECT", "SELECT %d", (int) wmcf->database)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    /* behind sentinels: the address named may be a replica by now */
    if (wmcf->sentinels) {
        if (redisAsyncCommand(ac, ngx_http_whatsapp_redis_role_reply, NULL,
                              "ROLE")
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->preamble++;
    }

    return ngx_http_whatsapp_redis_load(
                                   ngx_http_whatsapp_redis_preamble_reply);
}


static void
ngx_http_whatsapp_redis_connected(const redisAsyncContext *cac, int status)
{
    redisAsyncContext          *ac;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (status != REDIS_OK) {
        ngx_http_whatsapp_redis_why(NGX_HTTP_WHATSAPP_ERR_CONNECT,
                                    "cannot connect to %V:%i: %s",
                                    &rd->addr, rd->port, cac->errstr);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: cannot connect to %V:%i: %s",
                      &rd->addr, rd->port, cac->errstr);

        /* hiredis frees the context when this returns */
        if (rd->ac == cac) {
            rd->ac = NULL;
            ngx_http_whatsapp_redis_down();
        }

        ngx_http_whatsapp_redis_schedule();
        return;
    }

    ac = rd->ac;

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "whatsapp redis: connection to %V:%i made, sending its "
                  "preamble", &rd->addr, rd->port);

    ngx_http_whatsapp_inc(redis_connects);
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;
    ngx_http_whatsapp_redis_why(-1, "connected to %V:%i, loading the "
                                "function", &rd->addr, rd->port);

    if (ngx_http_whatsapp_redis_preamble(ac) != NGX_OK) {
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
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (status != REDIS_OK) {
        ngx_http_whatsapp_redis_why(NGX_HTTP_WHATSAPP_ERR_LOST,
                                    "connection to %V:%i lost: %s",
                                    &rd->addr, rd->port, ac->errstr);

        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: connection lost: %s", ac->errstr);

    } else {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "whatsapp redis: connection closed");
    }

    if (rd->ac == ac) {
        rd->ac = NULL;
        ngx_http_whatsapp_redis_down();
    }

    ngx_http_whatsapp_redis_schedule();
}


/* the link is gone: calls that waited for it are told */
static void
ngx_http_whatsapp_redis_down(void)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (rd->state == NGX_HTTP_WHATSAPP_REDIS_DOWN) {
        return;
    }

    rd->state = NGX_HTTP_WHATSAPP_REDIS_DOWN;

    if (!rd->exiting) {
        rd->link(0);
    }
}


static void
ngx_http_whatsapp_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_whatsapp_redis_connect();
}


static void
ngx_http_whatsapp_redis_schedule(void)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (rd->exiting || rd->ac || rd->asking || rd->reconnect.timer_set) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: reconnecting in %M ms", rd->backoff);

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff = ngx_min(rd->backoff * 2, rd->wmcf->backoff_max);
}


/* behind sentinels, the primary is asked for on every connect */
static void
ngx_http_whatsapp_redis_connect(void)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (rd->wmcf->sentinels == NULL) {
        ngx_http_whatsapp_redis_open();
        return;
    }

    rd->asking = 1;
    rd->state = NGX_HTTP_WHATSAPP_REDIS_CONNECTING;
    ngx_http_whatsapp_redis_why(-1, "asking the sentinels for \"%V\"",
                                &rd->wmcf->master);

    ngx_http_whatsapp_sentinel_ask(rd->wmcf, rd->log,
                                   ngx_http_whatsapp_redis_primary);
}


static void
ngx_http_whatsapp_redis_primary(ngx_str_t *addr, ngx_int_t port)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;
    rd->asking = 0;

    if (rd->exiting) {
        return;
    }

    if (addr == NULL) {
        ngx_http_whatsapp_redis_why(NGX_HTTP_WHATSAPP_ERR_CONNECT,
                                    "no sentinel named a primary for \"%V\"",
                                    &rd->wmcf->master);
        ngx_http_whatsapp_redis_down();
        ngx_http_whatsapp_redis_schedule();
        return;
    }

    rd->addr.data = rd->primary;
    rd->addr.len = ngx_min(addr->len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(rd->primary, addr->data, rd->addr.len);
    rd->primary[rd->addr.len] = '\0';
    rd->port = port;

    ngx_http_whatsapp_redis_open();
}


static void
ngx_http_whatsapp_redis_open(void)
{
    redisAsyncContext          *ac;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    /* the address is numeric or a path: connecting never resolves */
    if (rd->port) {
        ac = redisAsyncConnect((char *) rd->addr.data, (int) rd->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rd->addr.data);
    }

    if (ac == NULL || ac->err) {
        ngx_http_whatsapp_redis_why(NGX_HTTP_WHATSAPP_ERR_CONNECT,
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

        ngx_http_whatsapp_redis_schedule();
        return;
    }

    if (ngx_http_whatsapp_hiredis_attach(ac, rd->log) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_whatsapp_redis_schedule();
        return;
    }

    rd->ac = ac;
    rd->state = NGX_HTTP_WHATSAPP_REDIS_CONNECTING;
    rd->generation++;
    ngx_http_whatsapp_redis_why(-1, "connecting to %V:%i", &rd->addr,
                                rd->port);

    /* the connect callback waits for the first write event: set it last */
    redisAsyncSetDisconnectCallback(ac, ngx_http_whatsapp_redis_disconnected);
    redisAsyncSetConnectCallback(ac, ngx_http_whatsapp_redis_connected);
}


ngx_int_t
ngx_http_whatsapp_redis_init(ngx_cycle_t *cycle,
    ngx_http_whatsapp_main_conf_t *wmcf, ngx_http_whatsapp_redis_link_pt link)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    ngx_memzero(rd, sizeof(ngx_http_whatsapp_redis_t));

    rd->link = link;
    rd->wmcf = wmcf;
    rd->addr = wmcf->addr;
    rd->port = wmcf->port;
    rd->log = cycle->log;
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;

    rd->reconnect.handler = ngx_http_whatsapp_redis_reconnect_handler;
    rd->reconnect.data = rd;
    rd->reconnect.log = cycle->log;

    /* a graceful shutdown must not wait for a reconnection */
    rd->reconnect.cancelable = 1;

    ngx_http_whatsapp_redis_connect();

    return NGX_OK;
}


void
ngx_http_whatsapp_redis_exit(void)
{
    redisAsyncContext          *ac;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;
    rd->exiting = 1;

    ngx_http_whatsapp_sentinel_exit();
    rd->asking = 0;

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


/*
 * whatsapp_health: NGX_OK when requests can be appended, the link's state
 * in words either way
 */
ngx_int_t
ngx_http_whatsapp_redis_health(ngx_str_t *why, u_char *buf, size_t size)
{
    u_char                     *p;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (rd->wmcf == NULL) {
        ngx_str_set(why, "no Redis link: no whatsapp_webhook in this "
                    "configuration");
        return NGX_DECLINED;
    }

    p = ngx_snprintf(buf, size, "redis: %*s", rd->why_len, rd->why);

    if (rd->reconnect.timer_set) {
        p = ngx_snprintf(p, buf + size - p, "; trying again in %M ms",
                         (ngx_msec_t) (rd->reconnect.timer.key
                                       - ngx_current_msec));
    }

    why->data = buf;
    why->len = p - buf;

    return ngx_http_whatsapp_redis_state() == NGX_OK ? NGX_OK : NGX_DECLINED;
}


/*
 * NGX_OK: commands can be sent; NGX_AGAIN: a connection is being made or
 * is sending its preamble; NGX_DECLINED: none, until the next reconnect.
 */
ngx_int_t
ngx_http_whatsapp_redis_state(void)
{
    redisAsyncContext          *ac;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;
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
ngx_http_whatsapp_redis_command(int argc, const char **argv,
    const size_t *argvlen, redisCallbackFn *fn, void *data,
    ngx_uint_t *generation)
{
    if (ngx_http_whatsapp_redis_state() != NGX_OK) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(ngx_http_whatsapp_redis.ac, fn, data, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    *generation = ngx_http_whatsapp_redis.generation;

    return NGX_OK;
}


/*
 * What waits is written now rather than at the end of the turn.  A failed
 * write answers every command queued with a NULL reply: callers write
 * before they queue a command of their own, never after.
 */
void
ngx_http_whatsapp_redis_write(void)
{
    if (ngx_http_whatsapp_redis.ac) {
        ngx_http_whatsapp_hiredis_write(ngx_http_whatsapp_redis.ac);
    }
}


void
ngx_http_whatsapp_redis_reset(ngx_uint_t generation, const char *reason)
{
    redisAsyncContext          *ac;
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;
    ac = rd->ac;

    if (ac == NULL || generation != rd->generation) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "whatsapp redis: dropping the connection: %s", reason);
    ngx_http_whatsapp_redis_why(-1, "connection to %V:%i dropped: %s",
                                &rd->addr, rd->port, reason);

    rd->ac = NULL;

    /* every command still waiting gets a NULL reply: its request, a 503 */
    redisAsyncFree(ac);
    ngx_http_whatsapp_redis_down();

    ngx_http_whatsapp_redis_schedule();
}
