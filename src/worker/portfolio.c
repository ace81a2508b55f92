/*
 * wa-relayd: business portfolios declared with --portfolio (portfolio.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "log.h"
#include "peer.h"
#include "portfolio.h"


int
wa_portfolios_parse(const char *spec, wa_portfolio_pt cb, void *data)
{
    char        id[WA_PORTFOLIO_ID_MAX], wabas[1024];
    size_t      n, len;
    const char *p, *end, *eq;

    for (p = spec; *p; p = *end ? end + 1 : end) {
        end = p + strcspn(p, "; \t\n");
        len = (size_t) (end - p);

        if (len == 0) {
            continue;
        }

        eq = memchr(p, '=', len);
        n = eq ? (size_t) (eq - p) : 0;

        if (eq == NULL || n == 0 || n >= sizeof(id) || eq + 1 == end
            || len - n - 1 >= sizeof(wabas)
            || memchr(eq + 1, '=', (size_t) (end - eq - 1)) != NULL)
        {
            fprintf(stderr, "wa-relayd: --portfolio: \"%.*s\" is not "
                    "ID=WABA[,WABA...]\n", (int) len, p);
            return -1;
        }

        memcpy(id, p, n);
        id[n] = '\0';
        memcpy(wabas, eq + 1, len - n - 1);
        wabas[len - n - 1] = '\0';

        if (cb && cb(id, wabas, data) != 0) {
            return -1;
        }
    }

    return 0;
}


typedef struct {
    wa_link_t    *own;          /* one partition: the link */
    const char   *prefix;
    atomic_int   *stop;
} wa_publish_t;


/* one HSET in the partition of id */
static int
wa_publish_hset(wa_publish_t *pb, const char *id, const char *kind,
    const char *field, const char *value)
{
    int          rc;
    char         key[512];
    wa_args_t    a;
    wa_link_t   *l;
    redisReply  *r;
    const char  *prefix;

    /* each attempt waits its backoff */
    while ((l = wa_peer_of(id, pb->own, pb->prefix, &prefix, pb->stop))
           == NULL)
    {
        if (atomic_load(pb->stop)) {
            return -1;
        }
    }

    snprintf(key, sizeof(key), "%s:%s:%s", prefix, kind, id);
    wa_args(&a, "HSET", key, field, value, NULL);
    r = wa_link_call(l, &a);

    /* an error reply is freed by wa_link_failed */
    rc = wa_link_failed(l, r, "HSET portfolio") ? -1 : 0;
    if (rc == 0) {
        freeReplyObject(r);
    }

    wa_peer_done(l, pb->own);

    return rc;
}


static int
wa_publish_one(const char *id, const char *wabas, void *data)
{
    char           waba[WA_PORTFOLIO_ID_MAX];
    size_t         n;
    const char    *p;
    wa_publish_t  *pb = data;

    if (wa_publish_hset(pb, id, "portfolio", "wabas", wabas) != 0) {
        return -1;
    }

    for (p = wabas; *p; p += n + (p[n] == ',')) {
        n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(waba)) {
            continue;
        }

        memcpy(waba, p, n);
        waba[n] = '\0';

        if (wa_publish_hset(pb, waba, "waba", "portfolio", id) != 0) {
            return -1;
        }
    }

    wa_log(WA_LOG_INFO, "portfolio %s: WABAs %s", id, wabas);

    return 0;
}


int
wa_portfolios_publish(const wa_options_t *o, atomic_int *stop)
{
    int            rc;
    wa_link_t      l;
    wa_publish_t   pb;

    if (o->portfolio == NULL) {
        return 0;
    }

    /* one partition: a link of its own; several: the peers' */
    pb.own = NULL;
    pb.prefix = o->prefix;
    pb.stop = stop;

    if (o->partitions == 1) {
        wa_link_init(&l, o, -1, "");

        while (wa_link_connect(&l, stop) != 0) {
            if (atomic_load(stop)) {
                return -1;
            }
        }

        pb.own = &l;
    }

    rc = wa_portfolios_parse(o->portfolio, wa_publish_one, &pb);

    if (pb.own) {
        wa_link_close(&l);
    }

    return rc;
}
