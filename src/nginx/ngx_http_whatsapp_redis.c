/*
 * wa-relay: hiredis's async API on nginx's own event loop.
 *
 * One connection per worker process.  Its socket is wrapped in an
 * ngx_connection_t whose events drive redisAsyncHandleRead/Write; hiredis
 * owns the descriptor and closes it, nginx only frees the connection
 * structure.  Events are level-triggered: hiredis reads at most 16 KB per
 * call, and an edge-triggered socket would stall with a reply half read.
 *
 * Commands issued in the same turn of the event loop leave in one write at
 * the end of that turn: hiredis's request for a write event is answered by
 * posting the write handler to ngx_posted_events, which nginx runs after
 * every ready event of the turn.  Only when the socket is full does epoll
 * watch it for writability.  Commands are thus pipelined without an
 * epoll_ctl() pair per write and without waiting for one more turn; a
 * caller that wants Redis to start on what waits before the turn ends
 * writes it at once (ngx_http_whatsapp_redis_write).  While there is no
 * connection, callers are told at once (they answer 503), and a cancelable
 * timer reconnects with exponential backoff.
 */

#include "ngx_http_whatsapp_module.h"


typedef struct {
    redisAsyncContext              *ac;
    ngx_event_t                     reconnect;
    ngx_msec_t                      backoff;
    ngx_uint_t                      generation;
    ngx_uint_t                      exiting;
    ngx_uint_t                      writing;
    ngx_log_t                      *log;
    ngx_http_whatsapp_main_conf_t  *wmcf;
} ngx_http_whatsapp_redis_t;


#define NGX_HTTP_WHATSAPP_BACKOFF_MIN  100


static void ngx_http_whatsapp_redis_connect(void);
static void ngx_http_whatsapp_redis_schedule(void);


static ngx_http_whatsapp_redis_t  ngx_http_whatsapp_redis;

/* redis/wa_ingest.lua, made into a C string by the config script */
static const char  ngx_http_whatsapp_ingest_lua[] =
#include "ngx_http_whatsapp_lua.h"
    ;


static void
ngx_http_whatsapp_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_whatsapp_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /* a write request made meanwhile means the socket is full: see below */
    ngx_http_whatsapp_redis.writing = 1;
    redisAsyncHandleWrite(c->data);
    ngx_http_whatsapp_redis.writing = 0;
}


static void
ngx_http_whatsapp_redis_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t add)
{
    ngx_int_t  rc;

    if (add == (ev->active != 0)) {
        return;
    }

    rc = add ? ngx_add_event(ev, event, NGX_LEVEL_EVENT)
             : ngx_del_event(ev, event, 0);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "whatsapp redis: cannot %s an event",
                      add ? "add" : "delete");
    }
}


static void
ngx_http_whatsapp_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_redis_event(c->read, NGX_READ_EVENT, 1);
}


static void
ngx_http_whatsapp_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_redis_event(c->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_whatsapp_redis_add_write(void *data)
{
    ngx_connection_t   *c = data;
    redisAsyncContext  *ac = c->data;

    if (c->write->active || c->write->posted) {
        return;
    }

    /*
     * Waiting for the connection to complete, or a write that left bytes
     * behind: only epoll knows when the socket can take more.  Otherwise
     * the write is made once this turn of the loop has queued its commands.
     */

    if (ngx_http_whatsapp_redis.writing
        || !(ac->c.flags & REDIS_CONNECTED))
    {
        ngx_http_whatsapp_redis_event(c->write, NGX_WRITE_EVENT, 1);
        return;
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_whatsapp_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_redis_event(c->write, NGX_WRITE_EVENT, 0);

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
}


/* hiredis is freeing its context and will close the descriptor itself */
static void
ngx_http_whatsapp_redis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_redis_event(c->read, NGX_READ_EVENT, 0);
    ngx_http_whatsapp_redis_event(c->write, NGX_WRITE_EVENT, 0);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;

    ngx_free_connection(c);
}


static void
ngx_http_whatsapp_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_http_whatsapp_redis.log, 0,
                  "whatsapp redis: %s failed: %s", (char *) data, rr->str);

    /* no use going on with a connection that cannot authenticate */
    if (ngx_strcmp(data, "FUNCTION LOAD") != 0) {
        redisAsyncDisconnect(ac);
    }
}


void
ngx_http_whatsapp_redis_load_functions(void)
{
    redisAsyncContext  *ac;

    ac = ngx_http_whatsapp_redis.ac;

    if (ac == NULL) {
        return;
    }

    (void) redisAsyncCommand(ac, ngx_http_whatsapp_redis_setup_reply,
                             "FUNCTION LOAD", "FUNCTION LOAD REPLACE %b",
                             ngx_http_whatsapp_ingest_lua,
                             sizeof(ngx_http_whatsapp_ingest_lua) - 1);
}


static void
ngx_http_whatsapp_redis_connected(const redisAsyncContext *cac, int status)
{
    redisAsyncContext              *ac;
    ngx_http_whatsapp_redis_t      *rd;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    rd = &ngx_http_whatsapp_redis;
    wmcf = rd->wmcf;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: cannot connect to %V:%i: %s",
                      &wmcf->addr, wmcf->port, cac->errstr);

        /* hiredis frees the context when this returns */
        if (rd->ac == cac) {
            rd->ac = NULL;
        }

        ngx_http_whatsapp_redis_schedule();
        return;
    }

    ac = rd->ac;

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: connected to %V:%i",
                  &wmcf->addr, wmcf->port);

    ngx_http_whatsapp_inc(redis_connects);
    rd->backoff = NGX_HTTP_WHATSAPP_BACKOFF_MIN;

    /* pipelined ahead of anything a request sends on this connection */

    if (wmcf->password.len) {
        (void) redisAsyncCommand(ac, ngx_http_whatsapp_redis_setup_reply,
                                 "AUTH", "AUTH %b", wmcf->password.data,
                                 wmcf->password.len);
    }

    if (wmcf->database) {
        (void) redisAsyncCommand(ac, ngx_http_whatsapp_redis_setup_reply,
                                 "SELECT", "SELECT %d",
                                 (int) wmcf->database);
    }

    ngx_http_whatsapp_redis_load_functions();
}


static void
ngx_http_whatsapp_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: connection lost: %s", ac->errstr);

    } else {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "whatsapp redis: connection closed");
    }

    if (rd->ac == ac) {
        rd->ac = NULL;
    }

    ngx_http_whatsapp_redis_schedule();
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

    if (rd->exiting || rd->ac || rd->reconnect.timer_set) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "whatsapp redis: reconnecting in %M ms", rd->backoff);

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff = ngx_min(rd->backoff * 2, rd->wmcf->backoff_max);
}


static void
ngx_http_whatsapp_redis_connect(void)
{
    ngx_connection_t               *c;
    redisAsyncContext              *ac;
    ngx_http_whatsapp_redis_t      *rd;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    rd = &ngx_http_whatsapp_redis;
    wmcf = rd->wmcf;

    /* the address is numeric or a path: connecting never resolves */
    if (wmcf->port) {
        ac = redisAsyncConnect((char *) wmcf->addr.data, (int) wmcf->port);

    } else {
        ac = redisAsyncConnectUnix((char *) wmcf->addr.data);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "whatsapp redis: cannot connect to %V:%i: %s",
                      &wmcf->addr, wmcf->port,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_whatsapp_redis_schedule();
        return;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_whatsapp_redis_schedule();
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_whatsapp_redis_read_handler;
    c->write->handler = ngx_http_whatsapp_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_whatsapp_redis_add_read;
    ac->ev.delRead = ngx_http_whatsapp_redis_del_read;
    ac->ev.addWrite = ngx_http_whatsapp_redis_add_write;
    ac->ev.delWrite = ngx_http_whatsapp_redis_del_write;
    ac->ev.cleanup = ngx_http_whatsapp_redis_cleanup;

    rd->ac = ac;
    rd->generation++;

    /* the connect callback waits for the first write event: set it last */
    redisAsyncSetDisconnectCallback(ac, ngx_http_whatsapp_redis_disconnected);
    redisAsyncSetConnectCallback(ac, ngx_http_whatsapp_redis_connected);
}


ngx_int_t
ngx_http_whatsapp_redis_init(ngx_cycle_t *cycle,
    ngx_http_whatsapp_main_conf_t *wmcf)
{
    ngx_http_whatsapp_redis_t  *rd;

    rd = &ngx_http_whatsapp_redis;

    ngx_memzero(rd, sizeof(ngx_http_whatsapp_redis_t));

    rd->wmcf = wmcf;
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

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    ac = rd->ac;
    rd->ac = NULL;

    if (ac) {
        redisAsyncFree(ac);
    }
}


ngx_uint_t
ngx_http_whatsapp_redis_ready(void)
{
    redisAsyncContext  *ac;

    ac = ngx_http_whatsapp_redis.ac;

    return ac && !(ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING));
}


ngx_int_t
ngx_http_whatsapp_redis_command(int argc, const char **argv,
    const size_t *argvlen, redisCallbackFn *fn, void *data,
    ngx_uint_t *generation)
{
    if (!ngx_http_whatsapp_redis_ready()) {
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
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    ac = ngx_http_whatsapp_redis.ac;

    if (ac == NULL) {
        return;
    }

    c = ac->ev.data;

    if (c->write->posted) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->log, 0,
                       "whatsapp redis: writing %uz bytes now",
                       sdslen(ac->c.obuf));

        ngx_delete_posted_event(c->write);
        ngx_http_whatsapp_redis_write_handler(c->write);
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

    rd->ac = NULL;

    /* every command still waiting gets a NULL reply: its request, a 503 */
    redisAsyncFree(ac);

    ngx_http_whatsapp_redis_schedule();
}
