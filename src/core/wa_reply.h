/*
 * wa-relay: what a Redis error reply asks of its caller, for the module
 * and the worker alike (docs/redis.md): no retry mends it, the functions
 * must be loaded again, the node became a replica, or a Cluster sends the
 * call elsewhere.  Pure functions over the reply's text.
 */

#ifndef WA_REPLY_H
#define WA_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

typedef enum {
    WA_REPLY_OTHER = 0,     /* an error the call itself answers for */
    WA_REPLY_DENIED,        /* the credentials, or a permission the ACL
                               user lacks (itself or inside a function) */
    WA_REPLY_NO_FUNCTION,   /* the library is gone: FUNCTION FLUSH, or a
                               restart without persistence */
    WA_REPLY_READONLY,      /* a failover made the node a replica */
    WA_REPLY_MOVED,         /* a Cluster's slot served by another node */
    WA_REPLY_ASK,           /* ... moving: asked there, once */
    WA_REPLY_TRYAGAIN,      /* ... half moved: again shortly */
    WA_REPLY_CLUSTERDOWN,   /* ... not served now */
    WA_REPLY_UNKNOWN        /* a command or subcommand this Redis lacks */
} wa_reply_kind_t;

wa_reply_kind_t wa_reply_kind(const char *err, size_t len);

/* a Cluster's redirection of the call (MOVED or ASK): where to */
typedef struct {
    unsigned        slot;
    const char     *host;       /* in the reply's text, not terminated */
    size_t          host_len;
    unsigned        port;
} wa_redirect_t;

/*
 * "MOVED <slot> <host>:<port>" or "ASK ...": 0 and *to, or -1 when the
 * text is not one of those (a host may be an IPv6 address: the port is
 * after the last ':')
 */
int wa_reply_redirect(const char *err, size_t len, wa_redirect_t *to);

/*
 * The value after name in a reply of [name, value, ...] (an entry's fields,
 * HGETALL, an XINFO GROUPS group, a shard of CLUSTER SHARDS), or NULL;
 * names compare binary-safe
 */
redisReply *wa_reply_field(const redisReply *pairs, const char *name);

#endif /* WA_REPLY_H */
