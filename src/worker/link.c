/*
 * wa-relayd: the Redis link.  The worker is its own process with nothing
 * else to do while Redis answers, so blocking calls with a timeout are the
 * simple and right tool here (the nginx module is the one that must never
 * block).  Every thread that talks to Redis has a link of its own: each
 * partition's consumer loop and sender, the media fetcher, the metrics
 * server; peer.c keeps one per partition for reads across partitions.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "link.h"
#include "wa_reply.h"
#include "wa_slots.h"
#include "log.h"

#define WA_LINK_BACKOFF_MIN   100
#define WA_LINK_BACKOFF_MAX   5000

static const char  wa_state_lua[] =
#include "wa_state_lua.h"
    ;


static void
wa_args_push(wa_args_t *a, const char *p, size_t len)
{
    /* the commands built here are short: more is a programming error */
    if (a->argc == WA_ARGS_MAX) {
        wa_log(WA_LOG_ERROR, "a command of more than %d arguments",
               WA_ARGS_MAX);
        abort();
    }

    a->argv[a->argc] = p;
    a->lens[a->argc] = len;
    a->argc++;
}


void
wa_args(wa_args_t *a, ...)
{
    va_list      ap;
    const char  *s;

    a->argc = 0;

    va_start(ap, a);

    while ((s = va_arg(ap, const char *)) != NULL) {
        wa_args_push(a, s, strlen(s));
    }

    va_end(ap);
}


void
wa_args_add(wa_args_t *a, const char *s)
{
    wa_args_push(a, s, strlen(s));
}


void
wa_args_addn(wa_args_t *a, const char *p, size_t len)
{
    wa_args_push(a, p, len);
}


void
wa_args_ll(wa_args_t *a, long long n)
{
    char  *num;

    num = a->num[a->argc < WA_ARGS_MAX ? a->argc : 0];
    wa_args_push(a, num, (size_t) snprintf(num, 24, "%lld", n));
}


static void       (*wa_link_denied_fn)(void);
static atomic_int   wa_link_denied_told;


void
wa_link_on_denied(void (*fn)(void))
{
    wa_link_denied_fn = fn;
}


/* the credentials, or a command or key refused, itself or in a function */
static int
wa_link_denied(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR
           && wa_reply_kind(r->str, r->len) == WA_REPLY_DENIED;
}


void
wa_link_init(wa_link_t *l, const wa_options_t *o, int slot,
    const char *who)
{
    memset(l, 0, sizeof(wa_link_t));
    l->o = o;
    l->who = who;
    l->backoff = WA_LINK_BACKOFF_MIN;
    l->slot = slot;
}


/* AUTH [user] password, for the preamble and for asking a cluster node */
static void
wa_link_auth(wa_link_t *l, wa_args_t *a)
{
    wa_args(a, "AUTH", NULL);

    if (l->o->user) {
        wa_args_add(a, l->o->user);
    }

    wa_args_add(a, l->o->password);
}


/* host:port or unix:/path, with the link's timeout */
static redisContext *
wa_link_dial(wa_link_t *l, const char *addr)
{
    long            port;
    char            host[256], *colon, *end;
    redisContext   *c;
    struct timeval  tv;

    tv.tv_sec = l->o->timeout_ms / 1000;
    tv.tv_usec = (l->o->timeout_ms % 1000) * 1000;

    if (strncmp(addr, "unix:", 5) == 0) {
        c = redisConnectUnixWithTimeout(addr + 5, tv);

    } else {
        snprintf(host, sizeof(host), "%s", addr);
        colon = strrchr(host, ':');
        port = 6379;

        if (colon) {
            *colon = '\0';
            port = strtol(colon + 1, &end, 10);

            if (*end != '\0' || port <= 0 || port > 65535) {
                wa_log(WA_LOG_ERROR, "%sbad Redis address \"%s\"", l->who,
                       addr);
                return NULL;
            }
        }

        c = redisConnectWithTimeout(host, (int) port, tv);
    }

    if (c == NULL || c->err) {
        wa_log(WA_LOG_ERROR, "%scannot connect to %s: %s", l->who, addr,
               c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    /* replies must come within the timeout; BLOCK is shorter than it */
    redisSetTimeout(c, tv);

    return c;
}


/*
 * The primary's address, asked of each sentinel in turn (--sentinel): the
 * worker blocks on nothing but Redis, so it asks synchronously, and names
 * are resolved again on every question.  0, or -1 if none named it.
 */
static int
wa_link_ask_sentinels(wa_link_t *l)
{
    char           list[1024], *s, *save;
    redisReply    *r;
    redisContext  *c;

    snprintf(list, sizeof(list), "%s", l->o->sentinel);

    for (s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        c = wa_link_dial(l, s);
        if (c == NULL) {
            continue;
        }

        r = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                         l->o->master);

        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
            && r->element[0]->type == REDIS_REPLY_STRING
            && r->element[1]->type == REDIS_REPLY_STRING)
        {
            snprintf(l->primary, sizeof(l->primary), "%s:%s",
                     r->element[0]->str, r->element[1]->str);
            wa_log(WA_LOG_INFO, "%ssentinel %s names %s the primary of "
                   "\"%s\"", l->who, s, l->primary, l->o->master);
            freeReplyObject(r);
            redisFree(c);
            return 0;
        }

        wa_log(WA_LOG_ERROR, "%ssentinel %s knows no primary \"%s\"%s%s",
               l->who, s, l->o->master, r && r->type == REDIS_REPLY_ERROR
               ? ": " : "", r && r->type == REDIS_REPLY_ERROR ? r->str : "");

        if (r) {
            freeReplyObject(r);
        }
        redisFree(c);
    }

    wa_log(WA_LOG_ERROR, "%sno sentinel named the primary of \"%s\"",
           l->who, l->o->master);

    return -1;
}


/* a range of the slot map (wa_slots.h): its primary, if it serves ours */
static int
wa_link_range(unsigned start, unsigned end, const char *host,
    size_t host_len, unsigned port, void *data)
{
    wa_link_t  *l = data;

    /* a link for no slot in particular: the first primary named */
    if (l->slot >= 0 && ((unsigned) l->slot < start
                         || (unsigned) l->slot > end))
    {
        return 0;
    }

    snprintf(l->primary, sizeof(l->primary), "%.*s:%u", (int) host_len,
             host, port);

    return 1;
}


/*
 * The primary serving the link's slot in a slot map's reply (with no
 * slot, the first primary named): 0, or -1
 */
static int
wa_link_slot_owner(wa_link_t *l, const redisReply *r)
{
    char  was[sizeof(l->primary)];

    memcpy(was, l->primary, sizeof(was));
    l->primary[0] = '\0';

    if (wa_slots_each(r, wa_link_range, l) > 0 && l->primary[0]) {
        return 0;
    }

    memcpy(l->primary, was, sizeof(was));

    return -1;
}


/*
 * CLUSTER SHARDS, or SLOTS where Redis does not know it (wa_slots.h): the
 * reply, or NULL when the connection broke
 */
static redisReply *
wa_link_slot_map(redisContext *c)
{
    redisReply  *r;

    r = redisCommand(c, "CLUSTER " WA_SLOTS_ASK);

    if (r && r->type == REDIS_REPLY_ERROR
        && wa_reply_kind(r->str, r->len) == WA_REPLY_UNKNOWN)
    {
        freeReplyObject(r);
        r = redisCommand(c, "CLUSTER " WA_SLOTS_FALLBACK);
    }

    return r;
}


/*
 * With --cluster, the primary serving the link's slot, asked of each node
 * named in turn (CLUSTER SHARDS, authenticated when there is a password):
 * asked again whenever the link breaks, as MOVED breaks it.  0, or -1.
 */
static int
wa_link_ask_cluster(wa_link_t *l)
{
    int            found;
    char           list[1024], *s, *save;
    wa_args_t      a;
    redisReply    *r;
    redisContext  *c;

    snprintf(list, sizeof(list), "%s", l->o->cluster);

    for (s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        c = wa_link_dial(l, s);
        if (c == NULL) {
            continue;
        }

        r = NULL;

        if (l->o->password) {
            wa_link_auth(l, &a);
            r = redisCommandArgv(c, a.argc, a.argv, a.lens);
        }

        if (r == NULL || r->type != REDIS_REPLY_ERROR) {
            if (r) {
                freeReplyObject(r);
            }
            r = wa_link_slot_map(c);
        }

        found = (r && wa_link_slot_owner(l, r) == 0);

        if (!found) {
            wa_log(WA_LOG_ERROR, "%scluster node %s names no primary for "
                   "slot %d%s%s", l->who, s, l->slot,
                   r && r->type == REDIS_REPLY_ERROR ? ": " : "",
                   r && r->type == REDIS_REPLY_ERROR ? r->str : "");
        }

        if (r) {
            freeReplyObject(r);
        }
        redisFree(c);

        if (found) {
            return 0;
        }
    }

    return -1;
}


static redisContext *
wa_link_open(wa_link_t *l)
{
    if (l->o->cluster) {
        if (wa_link_ask_cluster(l) != 0) {
            return NULL;
        }

    } else if (l->o->sentinel == NULL) {
        snprintf(l->primary, sizeof(l->primary), "%s", l->o->redis);

    } else if (wa_link_ask_sentinels(l) != 0) {
        return NULL;
    }

    return wa_link_dial(l, l->primary);
}


/* AUTH, SELECT, FUNCTION LOAD: 0, or -1 with the link closed */
static int
wa_link_preamble(wa_link_t *l)
{
    wa_args_t    a;
    redisReply  *r;

    if (l->o->password) {
        wa_link_auth(l, &a);
        r = wa_link_call(l, &a);
        if (wa_link_failed(l, r, "AUTH")) {
            return -1;
        }
        freeReplyObject(r);
    }

    if (l->o->db) {
        wa_args(&a, "SELECT", NULL);
        wa_args_ll(&a, l->o->db);
        r = wa_link_call(l, &a);
        if (wa_link_failed(l, r, "SELECT")) {
            return -1;
        }
        freeReplyObject(r);
    }

    /* behind sentinels, in a Cluster: the node named may be a replica */
    if (l->o->sentinel || (l->o->cluster && l->slot >= 0)) {
        wa_args(&a, "ROLE", NULL);
        r = wa_link_call(l, &a);
        if (wa_link_failed(l, r, "ROLE")) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0
            || r->element[0]->type != REDIS_REPLY_STRING
            || strcmp(r->element[0]->str, "master") != 0)
        {
            wa_log(WA_LOG_ERROR, "%sRedis at %s is not the primary; asking "
                   "the %s again", l->who, l->primary,
                   l->o->cluster ? "cluster" : "sentinels");
            freeReplyObject(r);
            return -1;
        }

        freeReplyObject(r);
    }

    return wa_link_load_functions(l);
}


int
wa_link_connect(wa_link_t *l, atomic_int *stop)
{
    long  waited;

    if (l->c != NULL) {
        return 0;
    }

    l->c = wa_link_open(l);

    if (l->c != NULL && wa_link_preamble(l) == 0) {
        wa_log(WA_LOG_INFO, "%sconnected to Redis at %s", l->who,
               l->primary);
        l->backoff = WA_LINK_BACKOFF_MIN;
        return 0;
    }

    wa_link_close(l);

    wa_log(WA_LOG_WARN, "%sretrying in %ld ms", l->who, l->backoff);

    for (waited = 0; waited < l->backoff && !atomic_load(stop);
         waited += 100)
    {
        wa_clock_sleep_ms(l->backoff - waited < 100 ? l->backoff - waited
                                                    : 100);
    }

    l->backoff = l->backoff * 2 > WA_LINK_BACKOFF_MAX ? WA_LINK_BACKOFF_MAX
                                                      : l->backoff * 2;

    return -1;
}


void
wa_link_lost(wa_link_t *l)
{
    wa_log(WA_LOG_ERROR, "%slost the Redis connection; reconnecting",
           l->who);
    wa_link_close(l);
}


void
wa_link_close(wa_link_t *l)
{
    if (l->c) {
        redisFree(l->c);
        l->c = NULL;
    }
}


int
wa_link_load_functions(wa_link_t *l)
{
    wa_args_t    a;
    redisReply  *r;

    wa_args(&a, "FUNCTION", "LOAD", "REPLACE", NULL);
    wa_args_addn(&a, wa_state_lua, sizeof(wa_state_lua) - 1);

    r = wa_link_call(l, &a);
    if (wa_link_failed(l, r, "FUNCTION LOAD")) {
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


redisReply *
wa_link_call(wa_link_t *l, wa_args_t *a)
{
    return wa_link_callv(l, a->argc, a->argv, a->lens);
}


redisReply *
wa_link_callv(wa_link_t *l, int argc, const char **argv, const size_t *lens)
{
    if (wa_link_appendv(l, argc, argv, lens) != 0) {
        return NULL;
    }

    return wa_link_reply(l);
}


int
wa_link_append(wa_link_t *l, wa_args_t *a)
{
    return wa_link_appendv(l, a->argc, a->argv, a->lens);
}


int
wa_link_appendv(wa_link_t *l, int argc, const char **argv,
    const size_t *lens)
{
    if (redisAppendCommandArgv(l->c, argc, argv, lens) != REDIS_OK) {
        wa_log(WA_LOG_ERROR, "%sRedis %.*s: %s", l->who, (int) lens[0],
               argv[0], l->c->errstr);
        return -1;
    }

    return 0;
}


int
wa_link_append_formatted(wa_link_t *l, const char *cmd, size_t len)
{
    if (redisAppendFormattedCommand(l->c, cmd, len) != REDIS_OK) {
        wa_log(WA_LOG_ERROR, "%sRedis: %s", l->who, l->c->errstr);
        return -1;
    }

    return 0;
}


/* what hiredis holds for Redis is written, no reply read */
int
wa_link_write(wa_link_t *l)
{
    int  done;

    do {
        if (redisBufferWrite(l->c, &done) != REDIS_OK) {
            wa_log(WA_LOG_ERROR, "%sRedis: %s", l->who, l->c->errstr);
            return -1;
        }
    } while (!done);

    return 0;
}


/*
 * A Cluster saying the slot is served elsewhere (MOVED), is moving (ASK,
 * TRYAGAIN) or is not served (CLUSTERDOWN): taken for a broken link, so
 * that what was read is left pending and the link asks for the slot's
 * primary again.  A call refused so ran nothing.
 */
static int
wa_link_moved(wa_link_t *l, const redisReply *r)
{
    wa_reply_kind_t  kind;

    if (r->type != REDIS_REPLY_ERROR || l->o->cluster == NULL) {
        return 0;
    }

    kind = wa_reply_kind(r->str, r->len);

    if (kind != WA_REPLY_MOVED && kind != WA_REPLY_ASK
        && kind != WA_REPLY_TRYAGAIN && kind != WA_REPLY_CLUSTERDOWN)
    {
        return 0;
    }

    wa_log(WA_LOG_WARN, "%sRedis at %s: %s; asking the cluster for slot %d "
           "again", l->who, l->primary, r->str, l->slot);

    return 1;
}


redisReply *
wa_link_reply(wa_link_t *l)
{
    void  *r;

    if (redisGetReply(l->c, &r) != REDIS_OK) {
        wa_log(WA_LOG_ERROR, "%sRedis: %s", l->who, l->c->errstr);
        return NULL;
    }

    if (((redisReply *) r)->type == REDIS_REPLY_ERROR
        && strncmp(((redisReply *) r)->str, "READONLY", 8) == 0)
    {
        /* a failover made it a replica: taken for a broken link */
        wa_log(WA_LOG_ERROR, "%sRedis at %s became a replica (READONLY)%s",
               l->who, l->primary,
               l->o->sentinel ? "; asking the sentinels again" : "");
        freeReplyObject(r);
        return NULL;
    }

    if (wa_link_moved(l, r)) {
        freeReplyObject(r);
        return NULL;
    }

    if (wa_link_denied(r)) {
        if (atomic_exchange(&wa_link_denied_told, 1) == 0) {
            wa_log(WA_LOG_ERROR, "%sRedis refused the user \"%s\": %s; "
                   "docs/redis.md lists what the worker needs; stopping",
                   l->who, l->o->user ? l->o->user : "default",
                   ((redisReply *) r)->str);
        }

        freeReplyObject(r);
        l->denied = 1;

        if (wa_link_denied_fn) {
            wa_link_denied_fn();
        }

        return NULL;
    }

    return r;
}


/*
 * The socket is read here rather than by hiredis so that the end of what
 * arrived can be seen before anything is parsed: the caller then sends
 * more commands at once, and parses while Redis works on them.  The socket
 * has the link's timeout (redisSetTimeout): a read that times out breaks
 * the link as hiredis's own would.  A value that happens to end a read
 * with the same bytes only makes the caller go on a little early: it then
 * waits in wa_link_reply, in order.
 */
int
wa_link_read_to_pong(wa_link_t *l)
{
    char     buf[65536], tail[7];
    size_t   have;
    ssize_t  n;

    if (wa_link_write(l) != 0) {
        return -1;
    }

    have = 0;

    for ( ;; ) {
        n = read(l->c->fd, buf, sizeof(buf));

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }

            wa_log(WA_LOG_ERROR, "%sRedis: %s", l->who,
                   n == 0 ? "connection closed" : strerror(errno));
            return -1;
        }

        if (redisReaderFeed(l->c->reader, buf, (size_t) n) != REDIS_OK) {
            wa_log(WA_LOG_ERROR, "%sRedis: the reply cannot be read",
                   l->who);
            return -1;
        }

        /* the last 7 bytes seen, across reads */
        if ((size_t) n >= sizeof(tail)) {
            memcpy(tail, buf + n - sizeof(tail), sizeof(tail));
            have = sizeof(tail);

        } else {
            if (have + n > sizeof(tail)) {
                memmove(tail, tail + have + n - sizeof(tail),
                        sizeof(tail) - n);
                have = sizeof(tail) - n;
            }

            memcpy(tail + have, buf, n);
            have += n;
        }

        if (have == sizeof(tail) && memcmp(tail, "+PONG\r\n", 7) == 0) {
            return 0;
        }
    }
}


void
wa_link_counters(wa_link_t *l, const char *key, const char **names,
    const long long *v, int n)
{
    int          i;
    wa_args_t    a;
    redisReply  *r;

    if (l->c == NULL || l->c->err) {
        return;
    }

    wa_args(&a, "HSET", key, NULL);

    for (i = 0; i < n; i++) {
        wa_args_add(&a, names[i]);
        wa_args_ll(&a, v[i]);
    }

    r = wa_link_call(l, &a);
    if (r) {
        freeReplyObject(r);
    }
}


int
wa_link_failed(wa_link_t *l, redisReply *r, const char *what)
{
    if (r == NULL) {
        if (!l->denied) {
            wa_log(WA_LOG_ERROR, "%sRedis %s: %s", l->who, what,
                   l->c && l->c->errstr[0] ? l->c->errstr : "no reply");
        }
        return 1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        wa_log(WA_LOG_ERROR, "%sRedis %s: %s", l->who, what, r->str);
        freeReplyObject(r);
        return 1;
    }

    return 0;
}


int
wa_link_not_loaded(const redisReply *r)
{
    /* FUNCTION FLUSH, or a Redis restarted without persistence */
    return r->type == REDIS_REPLY_ERROR
           && wa_reply_kind(r->str, r->len) == WA_REPLY_NO_FUNCTION;
}
