/*
 * wa-relayd: one synchronous hiredis connection.  The worker is its own
 * process with nothing else to do while Redis answers, so blocking calls
 * with a timeout are the simple and right tool here (the nginx module is
 * the one that must never block).
 */

#include <string.h>
#include <sys/time.h>

#include "conn.h"
#include "log.h"

static const char  state_lua[] =
#include "wa_state_lua.h"
    ;


redisContext *
conn_open(const options_t *o)
{
    long            port;
    char            host[256], *colon, *end;
    redisReply     *r;
    redisContext   *c;
    struct timeval  tv;

    tv.tv_sec = o->timeout_ms / 1000;
    tv.tv_usec = (o->timeout_ms % 1000) * 1000;

    if (strncmp(o->redis, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(o->redis + 5, tv);

    } else {
        snprintf(host, sizeof(host), "%s", o->redis);
        colon = strrchr(host, ':');
        port = 6379;

        if (colon) {
            *colon = '\0';
            port = strtol(colon + 1, &end, 10);

            if (*end != '\0' || port <= 0 || port > 65535) {
                log_msg(LOG_ERROR, "bad Redis address \"%s\"", o->redis);
                return NULL;
            }
        }

        c = redisConnectWithTimeout(host, (int) port, tv);
    }

    if (c == NULL || c->err) {
        log_msg(LOG_ERROR, "cannot connect to Redis at %s: %s", o->redis,
                c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    /* replies must come within the timeout; BLOCK is shorter than it */
    redisSetTimeout(c, tv);

    if (o->password) {
        r = redisCommand(c, "AUTH %s", o->password);
        if (conn_failed(c, r, "AUTH")) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    if (o->db) {
        r = redisCommand(c, "SELECT %d", o->db);
        if (conn_failed(c, r, "SELECT")) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    if (conn_load_functions(c) != 0) {
        redisFree(c);
        return NULL;
    }

    log_msg(LOG_INFO, "connected to Redis at %s", o->redis);

    return c;
}


int
conn_load_functions(redisContext *c)
{
    redisReply  *r;

    r = redisCommand(c, "FUNCTION LOAD REPLACE %b", state_lua,
                     sizeof(state_lua) - 1);

    if (conn_failed(c, r, "FUNCTION LOAD")) {
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


int
conn_failed(redisContext *c, redisReply *r, const char *what)
{
    if (r == NULL) {
        log_msg(LOG_ERROR, "Redis %s: %s", what,
                c->errstr[0] ? c->errstr : "no reply");
        return 1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, "Redis %s: %s", what, r->str);
        freeReplyObject(r);
        return 1;
    }

    return 0;
}
