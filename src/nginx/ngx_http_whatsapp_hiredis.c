/*
 * wa-relay: hiredis's async API on nginx's own event loop, for every
 * connection the module makes (the Redis link, a question to a sentinel).
 *
 * The socket is wrapped in an ngx_connection_t whose events drive
 * redisAsyncHandleRead/Write; hiredis owns the descriptor and closes it,
 * nginx only frees the connection structure.  Events are level-triggered:
 * hiredis reads at most 16 KB per call, and an edge-triggered socket would
 * stall with a reply half read.
 *
 * Commands issued in the same turn of the event loop leave in one write at
 * the end of that turn: hiredis's request for a write event is answered by
 * posting the write handler to ngx_posted_events, which nginx runs after
 * every ready event of the turn.  Only when the socket is full does epoll
 * watch it for writability.  Commands are thus pipelined without an
 * epoll_ctl() pair per write and without waiting for one more turn.
 */

#include "ngx_http_whatsapp_module.h"


/* set while hiredis writes: a write event asked for then waits for epoll */
static ngx_uint_t  ngx_http_whatsapp_hiredis_writing;


static void
ngx_http_whatsapp_hiredis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_whatsapp_hiredis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /*
     * hiredis asks for a write event from inside its own write when the
     * socket took less than it had (its addWrite hook, the one way its
     * public API tells): add_write then waits for epoll, see below
     */
    ngx_http_whatsapp_hiredis_writing = 1;
    redisAsyncHandleWrite(c->data);
    ngx_http_whatsapp_hiredis_writing = 0;
}


static void
ngx_http_whatsapp_hiredis_event(ngx_event_t *ev, ngx_int_t event,
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
ngx_http_whatsapp_hiredis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_hiredis_event(c->read, NGX_READ_EVENT, 1);
}


static void
ngx_http_whatsapp_hiredis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_hiredis_event(c->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_whatsapp_hiredis_add_write(void *data)
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

    if (ngx_http_whatsapp_hiredis_writing
        || !(ac->c.flags & REDIS_CONNECTED))
    {
        ngx_http_whatsapp_hiredis_event(c->write, NGX_WRITE_EVENT, 1);
        return;
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_whatsapp_hiredis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_hiredis_event(c->write, NGX_WRITE_EVENT, 0);

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
}


/* hiredis is freeing its context and will close the descriptor itself */
static void
ngx_http_whatsapp_hiredis_cleanup(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_whatsapp_hiredis_event(c->read, NGX_READ_EVENT, 0);
    ngx_http_whatsapp_hiredis_event(c->write, NGX_WRITE_EVENT, 0);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;

    ngx_free_connection(c);
}


ngx_int_t
ngx_http_whatsapp_hiredis_attach(redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_whatsapp_hiredis_read_handler;
    c->write->handler = ngx_http_whatsapp_hiredis_write_handler;
    c->read->log = log;
    c->write->log = log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_whatsapp_hiredis_add_read;
    ac->ev.delRead = ngx_http_whatsapp_hiredis_del_read;
    ac->ev.addWrite = ngx_http_whatsapp_hiredis_add_write;
    ac->ev.delWrite = ngx_http_whatsapp_hiredis_del_write;
    ac->ev.cleanup = ngx_http_whatsapp_hiredis_cleanup;

    return NGX_OK;
}


/* what waits for the end of the turn is written now */
void
ngx_http_whatsapp_hiredis_write(redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ac->ev.data;

    if (c->write->posted) {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, c->log, 0,
                       "whatsapp redis: writing now");

        ngx_delete_posted_event(c->write);
        ngx_http_whatsapp_hiredis_write_handler(c->write);
    }
}
