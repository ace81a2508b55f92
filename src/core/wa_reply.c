/*
 * wa-relay: Redis error replies, classified (wa_reply.h).
 */

#include <string.h>

#include "wa_partition.h"
#include "wa_reply.h"


typedef struct {
    const char       *prefix;
    wa_reply_kind_t   kind;
} wa_reply_prefix_t;

/* as Redis 7 words them; the first that matches */
static const wa_reply_prefix_t  wa_reply_prefixes[] = {
    { "NOPERM", WA_REPLY_DENIED },
    { "WRONGPASS", WA_REPLY_DENIED },
    { "NOAUTH", WA_REPLY_DENIED },
    { "ERR The user executing the script can't", WA_REPLY_DENIED },
    { "READONLY", WA_REPLY_READONLY },
    { "MOVED ", WA_REPLY_MOVED },
    { "ASK ", WA_REPLY_ASK },
    { "TRYAGAIN", WA_REPLY_TRYAGAIN },
    { "CLUSTERDOWN", WA_REPLY_CLUSTERDOWN },
    { "ERR unknown subcommand", WA_REPLY_UNKNOWN },
    { "ERR Unknown subcommand", WA_REPLY_UNKNOWN },      /* Redis 6 */
    { "ERR unknown command", WA_REPLY_UNKNOWN }
};

/* inside another error too (a function's call of an unloaded one) */
#define WA_NO_FUNCTION  "Function not found"


static int
wa_reply_has(const char *s, size_t len, const char *what)
{
    size_t  i, n;

    n = strlen(what);

    for (i = 0; i + n <= len; i++) {
        if (memcmp(s + i, what, n) == 0) {
            return 1;
        }
    }

    return 0;
}


wa_reply_kind_t
wa_reply_kind(const char *err, size_t len)
{
    size_t  i, n;

    for (i = 0; i < sizeof(wa_reply_prefixes) / sizeof(wa_reply_prefixes[0]);
         i++)
    {
        n = strlen(wa_reply_prefixes[i].prefix);

        if (len >= n && memcmp(err, wa_reply_prefixes[i].prefix, n) == 0) {
            return wa_reply_prefixes[i].kind;
        }
    }

    return wa_reply_has(err, len, WA_NO_FUNCTION) ? WA_REPLY_NO_FUNCTION
                                                  : WA_REPLY_OTHER;
}


/* a decimal number of p[0 .. len), at most max: 0, or -1 */
static int
wa_reply_number(const char *p, size_t len, unsigned max, unsigned *v)
{
    size_t  i;

    *v = 0;

    if (len == 0 || len > 5) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        *v = *v * 10 + (unsigned) (p[i] - '0');
    }

    return *v <= max ? 0 : -1;
}


int
wa_reply_redirect(const char *err, size_t len, wa_redirect_t *to)
{
    const char  *p, *end, *slot, *colon, *q;

    switch (wa_reply_kind(err, len)) {
    case WA_REPLY_MOVED:
        p = err + sizeof("MOVED ") - 1;
        break;
    case WA_REPLY_ASK:
        p = err + sizeof("ASK ") - 1;
        break;
    default:
        return -1;
    }

    end = err + len;
    slot = p;
    p = memchr(p, ' ', (size_t) (end - p));

    if (p == NULL
        || wa_reply_number(slot, (size_t) (p - slot), WA_SLOTS - 1,
                           &to->slot) != 0)
    {
        return -1;
    }

    to->host = ++p;
    colon = NULL;

    for (q = p; q < end; q++) {
        if (*q == ':') {
            colon = q;
        }
    }

    if (colon == NULL || colon == to->host
        || wa_reply_number(colon + 1, (size_t) (end - colon - 1), 65535,
                           &to->port) != 0
        || to->port == 0)
    {
        return -1;
    }

    to->host_len = (size_t) (colon - to->host);

    return 0;
}


redisReply *
wa_reply_field(const redisReply *pairs, const char *name)
{
    size_t  i, len;

    if (pairs == NULL || pairs->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }

    len = strlen(name);

    for (i = 0; i + 1 < pairs->elements; i += 2) {
        if (pairs->element[i]->type == REDIS_REPLY_STRING
            && pairs->element[i]->len == len
            && memcmp(pairs->element[i]->str, name, len) == 0)
        {
            return pairs->element[i + 1];
        }
    }

    return NULL;
}
