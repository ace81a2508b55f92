/*
 * wa-relay: the Redis links of a worker process, and which of them serves
 * a hash slot.
 *
 * Without whatsapp_redis_cluster there is one link, and it serves every
 * slot.  With it, the configured address is only where the slot map is
 * first asked for: CLUSTER SHARDS (SLOTS before Redis 7), on a link that
 * is up, names the primary of each range of slots, and each primary gets
 * a link of its own.  The
 * map is asked for again when Redis answers MOVED, when a link goes down
 * (its primary may have failed over to a replica) or comes up without a
 * map, and when a link finds its node is a replica by now; meanwhile a
 * call for a slot whose link is down is answered 503.  A link whose node
 * no longer serves any slot is stopped, and started again if a later map
 * names it.
 *
 * Nothing here blocks: every address comes from Redis as an IP and a port,
 * and the map is asked for on nginx's loop like any other command.
 */

#include "ngx_http_whatsapp_module.h"
#include "wa_slots.h"


#define NGX_HTTP_WHATSAPP_NODES        64
#define NGX_HTTP_WHATSAPP_REFRESH_MIN    100
#define NGX_HTTP_WHATSAPP_REFRESH_AGAIN  250


typedef struct {
    ngx_http_whatsapp_main_conf_t      *wmcf;
    ngx_cycle_t                        *cycle;
    ngx_http_whatsapp_redis_changed_pt  changed;
    ngx_http_whatsapp_link_t           *link[NGX_HTTP_WHATSAPP_NODES];
    ngx_uint_t                          holds[NGX_HTTP_WHATSAPP_NODES];
    ngx_uint_t                          nlinks;
    u_char                              map[WA_SLOTS];  /* link + 1 */
    ngx_uint_t                          mapped;         /* slots in map */
    ngx_uint_t                          asking;         /* for the map */
    ngx_uint_t                          stale;          /* ask again */
    ngx_uint_t                          maps;           /* maps read */
    ngx_uint_t                          slots;          /* no SHARDS */
    ngx_event_t                         refresh;
    ngx_msec_t                          backoff;
    ngx_uint_t                          exiting;
} ngx_http_whatsapp_cluster_t;


static void ngx_http_whatsapp_cluster_changed(ngx_http_whatsapp_link_t *link,
    ngx_uint_t up);
static void ngx_http_whatsapp_cluster_ask(ngx_event_t *ev);
static void ngx_http_whatsapp_cluster_slots(redisAsyncContext *ac,
    void *reply, void *data);


static ngx_http_whatsapp_cluster_t  ngx_http_whatsapp_cluster;


ngx_int_t
ngx_http_whatsapp_redis_init(ngx_cycle_t *cycle,
    ngx_http_whatsapp_main_conf_t *wmcf,
    ngx_http_whatsapp_redis_changed_pt changed)
{
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    ngx_memzero(cl, sizeof(ngx_http_whatsapp_cluster_t));

    cl->wmcf = wmcf;
    cl->cycle = cycle;
    cl->changed = changed;
    cl->backoff = NGX_HTTP_WHATSAPP_REFRESH_MIN;

    cl->refresh.handler = ngx_http_whatsapp_cluster_ask;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;

    link = ngx_http_whatsapp_link_open(cycle, &wmcf->redis, &wmcf->addr,
                                       wmcf->port,
                                       ngx_http_whatsapp_cluster_changed);
    if (link == NULL) {
        return NGX_ERROR;
    }

    cl->link[0] = link;
    cl->nlinks = 1;

    return NGX_OK;
}


void
ngx_http_whatsapp_redis_exit(void)
{
    ngx_uint_t                    i;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;
    cl->exiting = 1;

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    for (i = 0; i < cl->nlinks; i++) {
        ngx_http_whatsapp_link_stop(cl->link[i]);
        ngx_free(cl->link[i]);
    }

    cl->nlinks = 0;
}


/* the link serving slot, or NULL: none known */
ngx_http_whatsapp_link_t *
ngx_http_whatsapp_redis_route(ngx_uint_t slot)
{
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (!cl->wmcf->redis.cluster) {
        return cl->nlinks ? cl->link[0] : NULL;
    }

    return cl->map[slot] ? cl->link[cl->map[slot] - 1] : NULL;
}


/*
 * NGX_OK: a call for slot can be sent; NGX_AGAIN: its link is coming up,
 * or the map is being read; NGX_DECLINED: not until something changes.
 */
ngx_int_t
ngx_http_whatsapp_redis_state(ngx_uint_t slot)
{
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    link = ngx_http_whatsapp_redis_route(slot);

    if (link) {
        return ngx_http_whatsapp_link_state(link);
    }

    /* no map yet: the seed link comes up, then the map is read */
    if (cl->wmcf->redis.cluster && cl->maps == 0 && cl->nlinks
        && ngx_http_whatsapp_link_state(cl->link[0]) != NGX_DECLINED)
    {
        return NGX_AGAIN;
    }

    return NGX_DECLINED;
}


/* every slot has a link, and every link that serves one is up */
static ngx_uint_t
ngx_http_whatsapp_cluster_up(void)
{
    ngx_uint_t                    i;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (!cl->wmcf->redis.cluster) {
        return cl->nlinks
               && ngx_http_whatsapp_link_state(cl->link[0]) == NGX_OK;
    }

    if (cl->mapped != WA_SLOTS) {
        return 0;
    }

    for (i = 0; i < cl->nlinks; i++) {
        if (cl->holds[i]
            && ngx_http_whatsapp_link_state(cl->link[i]) != NGX_OK)
        {
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_whatsapp_cluster_changed(ngx_http_whatsapp_link_t *link,
    ngx_uint_t up)
{
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (cl->wmcf->redis.cluster && (!up || cl->maps == 0 || cl->stale)) {
        /* down: its primary may have failed over; up: a map to read */
        ngx_http_whatsapp_redis_refresh();
    }

    cl->changed(ngx_http_whatsapp_cluster_up());
}


/* the map is asked for again, now if a link is up, or soon */
void
ngx_http_whatsapp_redis_refresh(void)
{
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (!cl->wmcf->redis.cluster || cl->exiting) {
        return;
    }

    cl->stale = 1;

    if (cl->asking || cl->refresh.timer_set) {
        return;
    }

    ngx_http_whatsapp_cluster_ask(&cl->refresh);
}


static void
ngx_http_whatsapp_cluster_ask(ngx_event_t *ev)
{
    size_t                        lens[2];
    ngx_uint_t                    i, n, generation;
    const char                   *argv[2];
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (cl->exiting || cl->asking) {
        return;
    }

    /* CLUSTER SHARDS, or SLOTS where Redis does not know it (wa_slots.h) */
    argv[0] = "CLUSTER";
    argv[1] = cl->slots ? WA_SLOTS_FALLBACK : WA_SLOTS_ASK;
    lens[0] = 7;
    lens[1] = ngx_strlen(argv[1]);

    /* from a link that is up: the first after the last one asked */
    for (n = 0; n < cl->nlinks; n++) {
        i = (cl->maps + n) % cl->nlinks;
        link = cl->link[i];

        if (ngx_http_whatsapp_link_state(link) != NGX_OK) {
            continue;
        }

        if (ngx_http_whatsapp_link_command(link, 2, argv, lens,
                                           ngx_http_whatsapp_cluster_slots,
                                           link, &generation)
            == NGX_OK)
        {
            cl->asking = 1;
            cl->stale = 0;
            return;
        }
    }

    /* none is up: they reconnect, and the first up asks; or try again */
    ngx_add_timer(&cl->refresh, cl->backoff);
    cl->backoff = ngx_min(cl->backoff * 2, cl->wmcf->redis.backoff_max);
}


/* the link to addr:port, started if it was stopped, opened if new */
static ngx_int_t
ngx_http_whatsapp_cluster_link(ngx_str_t *addr, ngx_int_t port)
{
    ngx_uint_t                    i;
    ngx_http_whatsapp_link_t     *link;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    for (i = 0; i < cl->nlinks; i++) {
        if (ngx_http_whatsapp_link_is(cl->link[i], addr, port)) {
            ngx_http_whatsapp_link_start(cl->link[i]);
            return i;
        }
    }

    if (cl->nlinks == NGX_HTTP_WHATSAPP_NODES || addr->len == 0
        || addr->len > NGX_SOCKADDR_STRLEN)
    {
        ngx_log_error(NGX_LOG_ERR, cl->cycle->log, 0,
                      "whatsapp redis: cannot link to the cluster's "
                      "primary \"%V:%i\"%s", addr, port,
                      cl->nlinks == NGX_HTTP_WHATSAPP_NODES
                      ? ": too many primaries" : "");
        return NGX_ERROR;
    }

    link = ngx_http_whatsapp_link_open(cl->cycle, &cl->wmcf->redis, addr, port,
                                       ngx_http_whatsapp_cluster_changed);
    if (link == NULL) {
        return NGX_ERROR;
    }

    cl->link[cl->nlinks] = link;

    return cl->nlinks++;
}


/* a map being built from the slot map's reply: each slot's link + 1 */
typedef struct {
    u_char                       *map;
    ngx_uint_t                    mapped;
} ngx_http_whatsapp_map_t;


/* a range of the slot map (wa_slots.h): its slots to its primary's link */
static int
ngx_http_whatsapp_cluster_range(unsigned start, unsigned end,
    const char *host, size_t host_len, unsigned port, void *data)
{
    ngx_int_t                 l;
    ngx_str_t                 addr;
    ngx_uint_t                s;
    ngx_http_whatsapp_map_t  *ms = data;

    addr.data = (u_char *) host;
    addr.len = host_len;

    l = ngx_http_whatsapp_cluster_link(&addr, port);
    if (l == NGX_ERROR) {
        return 0;
    }

    for (s = start; s <= end; s++) {
        ms->mapped += (ms->map[s] == 0);
        ms->map[s] = (u_char) (l + 1);
    }

    return 0;
}


/*
 * No map in the reply: asked again after the backoff, or at once with
 * CLUSTER SLOTS where Redis (before 7) does not know CLUSTER SHARDS
 */
static void
ngx_http_whatsapp_cluster_unread(ngx_http_whatsapp_cluster_t *cl,
    redisReply *rr)
{
    if (rr && rr->type == REDIS_REPLY_ERROR && !cl->slots
        && wa_reply_kind(rr->str, rr->len) == WA_REPLY_UNKNOWN)
    {
        ngx_log_error(NGX_LOG_INFO, cl->cycle->log, 0,
                      "whatsapp redis: no CLUSTER SHARDS (%s): CLUSTER "
                      "SLOTS instead", rr->str);
        cl->slots = 1;
        ngx_add_timer(&cl->refresh, 1);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, cl->cycle->log, 0,
                  "whatsapp redis: CLUSTER %s failed: %s",
                  cl->slots ? WA_SLOTS_FALLBACK : WA_SLOTS_ASK,
                  rr && rr->type == REDIS_REPLY_ERROR ? rr->str : "no reply");
    ngx_add_timer(&cl->refresh, cl->backoff);
    cl->backoff = ngx_min(cl->backoff * 2, cl->wmcf->redis.backoff_max);
}


/*
 * CLUSTER SHARDS or SLOTS (wa_slots.h): the map is built anew; a reply
 * that makes no sense leaves the old one.
 */
static void
ngx_http_whatsapp_cluster_slots(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                   *rr = reply;
    ngx_uint_t                    i, s, mapped, level, same;
    ngx_http_whatsapp_cluster_t  *cl;
    ngx_http_whatsapp_map_t       ms;
    u_char                        map[WA_SLOTS];

    cl = &ngx_http_whatsapp_cluster;
    cl->asking = 0;

    if (cl->exiting) {
        return;
    }

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY) {
        ngx_http_whatsapp_cluster_unread(cl, rr);
        return;
    }

    ngx_memzero(map, sizeof(map));
    ms.map = map;
    ms.mapped = 0;

    (void) wa_slots_each(rr, ngx_http_whatsapp_cluster_range, &ms);
    mapped = ms.mapped;

    same = (cl->maps && ngx_memcmp(cl->map, map, sizeof(map)) == 0);

    ngx_memcpy(cl->map, map, sizeof(map));
    cl->mapped = mapped;
    cl->maps++;
    cl->backoff = NGX_HTTP_WHATSAPP_REFRESH_MIN;

    ngx_memzero(cl->holds, sizeof(cl->holds));

    for (s = 0; s < WA_SLOTS; s++) {
        if (map[s]) {
            cl->holds[map[s] - 1]++;
        }
    }

    /* a node that serves no slot now is left alone */
    for (i = 0; i < cl->nlinks; i++) {
        if (cl->holds[i] == 0) {
            ngx_http_whatsapp_link_stop(cl->link[i]);
        }
    }

    if (!same) {
        level = (mapped == WA_SLOTS) ? NGX_LOG_INFO : NGX_LOG_WARN;

        ngx_log_error(level, cl->cycle->log, 0,
                      "whatsapp redis: cluster map read: %ui of %d slots "
                      "served", mapped, WA_SLOTS);
    }

    /*
     * A cluster in the middle of a failover: a slot unserved, or served by
     * a node out of reach until a replica takes over.  Asked again soon,
     * for as long as that lasts.
     */
    for (i = 0; i < cl->nlinks; i++) {
        if (cl->holds[i]
            && ngx_http_whatsapp_link_state(cl->link[i]) == NGX_DECLINED)
        {
            cl->stale = 1;
        }
    }

    if ((mapped != WA_SLOTS || cl->stale) && !cl->refresh.timer_set) {
        ngx_add_timer(&cl->refresh, NGX_HTTP_WHATSAPP_REFRESH_AGAIN);
    }

    cl->changed(ngx_http_whatsapp_cluster_up());
}


/*
 * A call answered "MOVED <slot> <ip>:<port>" or "ASK ...": the link to
 * that node (NULL if there is none to make).  MOVED puts it in the map at
 * once and has the whole map read again.
 */
static ngx_http_whatsapp_link_t *
ngx_http_whatsapp_cluster_redirect(ngx_uint_t moved, const char *error,
    size_t len)
{
    ngx_int_t                     l;
    ngx_uint_t                    slot;
    ngx_str_t                     addr;
    wa_redirect_t                 to;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (!cl->wmcf->redis.cluster || cl->exiting
        || wa_reply_redirect(error, len, &to) != 0)
    {
        return NULL;
    }

    slot = to.slot;
    addr.data = (u_char *) to.host;
    addr.len = to.host_len;

    l = ngx_http_whatsapp_cluster_link(&addr, to.port);
    if (l == NGX_ERROR) {
        return NULL;
    }

    if (moved) {
        if (cl->map[slot] == 0) {
            cl->mapped++;
        }

        if (cl->map[slot]) {
            cl->holds[cl->map[slot] - 1]--;
        }

        cl->map[slot] = (u_char) (l + 1);
        cl->holds[l]++;

        ngx_http_whatsapp_redis_refresh();
    }

    return cl->link[l];
}


/*
 * What an error reply to a command sent on a link (of that generation)
 * asks of the links, in one place: the functions loaded again (they are
 * gone), the link reset (a failover made its node a replica), the map
 * read again (the cluster is down, or a slot moved).  MOVED and ASK
 * refused the command before it ran: where to send it again is returned,
 * *ask set for ASK (that node, once, after ASKING); NULL otherwise.
 */
ngx_http_whatsapp_link_t *
ngx_http_whatsapp_redis_answer(ngx_http_whatsapp_link_t *link,
    ngx_uint_t generation, const redisReply *rr, ngx_uint_t *ask)
{
    wa_reply_kind_t  kind;

    kind = wa_reply_kind(rr->str, rr->len);
    *ask = (kind == WA_REPLY_ASK);

    switch (kind) {

    case WA_REPLY_NO_FUNCTION:
        ngx_http_whatsapp_link_load_functions(link);
        return NULL;

    case WA_REPLY_READONLY:
        ngx_http_whatsapp_redis_error(NGX_HTTP_WHATSAPP_ERR_REPLICA);
        ngx_http_whatsapp_link_reset(link, generation,
                                     "Redis became a replica (READONLY)");
        ngx_http_whatsapp_redis_refresh();
        return NULL;

    case WA_REPLY_CLUSTERDOWN:
        ngx_http_whatsapp_redis_refresh();
        return NULL;

    case WA_REPLY_MOVED:
    case WA_REPLY_ASK:
        return ngx_http_whatsapp_cluster_redirect(kind == WA_REPLY_MOVED,
                                                  rr->str, rr->len);

    default:
        return NULL;
    }
}


/*
 * whatsapp_health: NGX_OK when requests can be appended, the links' state
 * in words either way
 */
ngx_int_t
ngx_http_whatsapp_redis_health(ngx_str_t *why, u_char *buf, size_t size)
{
    u_char                       *p, *last;
    ngx_uint_t                    i, up, serving;
    ngx_http_whatsapp_cluster_t  *cl;

    cl = &ngx_http_whatsapp_cluster;

    if (cl->wmcf == NULL || cl->nlinks == 0) {
        ngx_str_set(why, "no Redis link: no whatsapp_webhook in this "
                    "configuration");
        return NGX_DECLINED;
    }

    last = buf + size;

    if (!cl->wmcf->redis.cluster) {
        p = ngx_slprintf(buf, last, "redis: ");
        p = ngx_http_whatsapp_link_why(cl->link[0], p, last);

    } else {
        up = 0;
        serving = 0;

        for (i = 0; i < cl->nlinks; i++) {
            if (cl->holds[i]) {
                serving++;
                up += (ngx_http_whatsapp_link_state(cl->link[i]) == NGX_OK);
            }
        }

        p = ngx_slprintf(buf, last, "redis cluster: %ui of %d slots "
                         "served, %ui of %ui primaries connected",
                         cl->mapped, WA_SLOTS, up, serving);

        for (i = 0; i < cl->nlinks; i++) {
            if ((cl->holds[i] || cl->maps == 0)
                && ngx_http_whatsapp_link_state(cl->link[i]) != NGX_OK)
            {
                p = ngx_slprintf(p, last, "; ");
                p = ngx_http_whatsapp_link_why(cl->link[i], p, last);
            }
        }
    }

    why->data = buf;
    why->len = p - buf;

    return ngx_http_whatsapp_cluster_up() ? NGX_OK : NGX_DECLINED;
}
