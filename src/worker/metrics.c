/*
 * wa-relayd: --metrics ADDR:PORT, an HTTP server of libmicrohttpd's in a
 * thread of its own: /metrics (Prometheus text format 0.0.4), /healthz,
 * and the dashboard (dashboard.c).  What the working threads count is
 * counters.c's; what only Redis knows (lag, pending entries, the
 * deferred entries, a paused sender) is asked on a link of this thread's
 * own, at each scrape: a slow scrape slows no consumer.
 */

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "dashboard.h"
#include "link.h"
#include "log.h"
#include "counters.h"
#include "metrics.h"
#include "peer.h"
#include "wa_streams.h"

static struct MHD_Daemon  *wa_daemon;
static const wa_options_t *wa_opts;
static wa_link_t           wa_mlink;
static atomic_int          wa_no_wait = 1;


/*
 * The link of this thread, answering a PING: a link Redis dropped since
 * the last request is made again, once, without waiting
 */
static int
wa_metrics_link(void)
{
    int          i;
    wa_args_t    a;
    redisReply  *r;

    for (i = 0; i < 2; i++) {
        if (wa_mlink.c == NULL
            && wa_link_connect(&wa_mlink, &wa_no_wait) != 0)
        {
            return -1;
        }

        wa_args(&a, "PING", NULL);
        r = wa_link_call(&wa_mlink, &a);

        if (r != NULL) {
            freeReplyObject(r);
            return 0;
        }
    }

    return -1;
}


static void
wa_render_stream(wa_link_t *l, wa_text_t *gauges, wa_text_t *lag,
    wa_text_t *pending, const char *stream)
{
    size_t       i;
    wa_args_t    a;
    redisReply  *r, *g, *name, *v;

    wa_args(&a, "XLEN", stream, NULL);
    r = wa_link_call(l, &a);
    if (r == NULL) {
        return;
    }

    if (r->type == REDIS_REPLY_INTEGER) {
        wa_printf(gauges, "wa_relay_stream_length{stream=\"%s\"} %lld\n",
                  stream, r->integer);
    }

    freeReplyObject(r);

    wa_args(&a, "XINFO", "GROUPS", stream, NULL);
    r = wa_link_call(l, &a);
    if (r == NULL) {
        return;
    }

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        g = r->element[i];
        name = wa_reply_field(g, "name");

        if (name == NULL || name->type != REDIS_REPLY_STRING) {
            continue;
        }

        v = wa_reply_field(g, "pending");
        if (v && v->type == REDIS_REPLY_INTEGER) {
            wa_printf(pending, "wa_relay_stream_group_pending{stream=\"%s\","
                      "group=\"%s\"} %lld\n", stream, name->str, v->integer);
        }

        /* lag is nil when Redis cannot tell (entries deleted): left out */
        v = wa_reply_field(g, "lag");
        if (v && v->type == REDIS_REPLY_INTEGER) {
            wa_printf(lag, "wa_relay_stream_group_lag{stream=\"%s\","
                      "group=\"%s\"} %lld\n", stream, name->str, v->integer);
        }
    }

    freeReplyObject(r);
}


/*
 * a gauge of each object of a list (business numbers, portfolios): a
 * field of it (of its member in, when not NULL), labelled by its id, the
 * member label names
 */
static void
wa_list_gauge(wa_text_t *t, json_t *list, const char *name,
    const char *help, const char *label, const char *in, const char *field)
{
    char         e[128];
    size_t       i;
    json_t      *n, *v;
    const char  *id;

    wa_printf(t, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);

    json_array_foreach(list, i, n) {
        v = json_object_get(in ? json_object_get(n, in) : n, field);
        id = json_string_value(json_object_get(n, label));

        if (v == NULL || id == NULL) {
            continue;
        }

        wa_printf(t, "%s{%s=\"%s\"} %lld\n", name, label,
                  wa_escape(id, e, sizeof(e)),
                  json_is_integer(v) ? (long long) json_integer_value(v)
                  : atoll(json_is_string(v) ? json_string_value(v) : "0"));
    }
}


/* the business numbers' state, from what the dashboard reads */
static void
wa_render_numbers(wa_text_t *t)
{
    char         today[16], e[3][128];
    size_t       i;
    json_t      *numbers, *portfolios, *n, *s;
    const char  *pn, *disp, *rating;

    numbers = wa_dashboard_numbers(&wa_mlink, wa_opts, 0, today,
                                   sizeof(today));

    wa_printf(t, "# HELP wa_relay_number_quality A business number's "
              "quality rating (1 for the current one)\n"
              "# TYPE wa_relay_number_quality gauge\n");

    json_array_foreach(numbers, i, n) {
        s = json_object_get(n, "number");
        pn = json_string_value(json_object_get(n, "phone_number_id"));
        disp = json_string_value(json_object_get(n, "display_phone_number"));
        rating = json_string_value(json_object_get(s, "quality_rating"));

        wa_printf(t, "wa_relay_number_quality{phone_number_id=\"%s\","
                  "display_phone_number=\"%s\",rating=\"%s\"} 1\n",
                  wa_escape(pn ? pn : "", e[0], sizeof(e[0])),
                  wa_escape(disp ? disp : "", e[1], sizeof(e[1])),
                  wa_escape(rating ? rating : "UNKNOWN", e[2], sizeof(e[2])));
    }

    wa_list_gauge(t, numbers, "wa_relay_number_reached_users",
                  "Users reached with business-initiated messages in the "
                  "last 24 h", "phone_number_id", NULL, "reached_24h");
    wa_list_gauge(t, numbers, "wa_relay_number_limit_users",
                  "The messaging limit's unique users per 24 h (-1: "
                  "unlimited)", "phone_number_id", "number",
                  "messaging_limit_users");

    portfolios = wa_dashboard_portfolios(&wa_mlink, wa_opts, numbers);
    wa_list_gauge(t, portfolios, "wa_relay_portfolio_limit_users",
                  "A business portfolio's messaging limit, unique users "
                  "per 24 h shared by its numbers (-1: unlimited)",
                  "portfolio", NULL, "limit_users");
    wa_list_gauge(t, portfolios, "wa_relay_portfolio_reached_users",
                  "Users a business portfolio reached with "
                  "business-initiated messages in the last 24 h",
                  "portfolio", NULL, "reached_24h");

    json_decref(portfolios);
    json_decref(numbers);
}


/*
 * One partition's part of what only Redis knows (the whole of it without
 * partitions): its streams and its deferred entries (t NULL: not those),
 * its sender's pause.  0, or -1 when the link broke.
 */
static int
wa_render_part(wa_link_t *l, const char *prefix, wa_text_t *t,
    wa_text_t *lag, wa_text_t *pending, long long *deferred, char *paused,
    size_t size)
{
    int          i;
    char         key[512];
    wa_args_t    a;
    redisReply  *r;

    static const char  *streams[] = {
        "messages", "statuses", "account", WA_STREAM_OUTBOX, "sent",
        WA_STREAM_DEAD, "alerts", "media"
    };

    for (i = 0; t && i < (int) (sizeof(streams) / sizeof(streams[0])); i++) {
        snprintf(key, sizeof(key), "%s:%s", prefix, streams[i]);
        wa_render_stream(l, t, lag, pending, key);
    }

    if (t) {
        snprintf(key, sizeof(key), "%s:deferred", prefix);
        wa_args(&a, "ZCARD", key, NULL);
        r = wa_link_call(l, &a);
        if (r == NULL) {
            return -1;
        }

        *deferred += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
    }

    snprintf(key, sizeof(key), "%s:sender:paused", prefix);
    wa_args(&a, "GET", key, NULL);
    r = wa_link_call(l, &a);
    if (r == NULL) {
        return -1;
    }

    if (r->type == REDIS_REPLY_STRING && paused[0] == '\0') {
        snprintf(paused, size, "%s", r->str);
    }

    freeReplyObject(r);

    return 0;
}


/*
 * Each partition's part, on the link to it (peer.c): 0, or -1 when one
 * cannot be asked
 */
static int
wa_render_parts(wa_text_t *t, wa_text_t *lag, wa_text_t *pending,
    long long *deferred, char *paused, size_t size)
{
    int          rc, attempt;
    long         p;
    size_t       len[3];
    long long    counted;
    wa_link_t   *l;
    const char  *prefix;

    if (wa_opts->partitions == 1) {
        return wa_render_part(&wa_mlink, wa_opts->prefix, t, lag, pending,
                              deferred, paused, size);
    }

    for (p = 0; p < wa_opts->partitions; p++) {

        /* twice: a link that a slot's move broke is made again */
        for (attempt = 0; attempt < 2; attempt++) {
            l = wa_peer_lock((unsigned) p, &prefix, &wa_no_wait);
            if (l == NULL) {
                continue;
            }

            /* what a failed attempt wrote is taken back */
            if (t) {
                len[0] = t->len;
                len[1] = lag->len;
                len[2] = pending->len;
                counted = *deferred;
            }

            rc = wa_render_part(l, prefix, t, lag, pending, deferred,
                                paused, size);
            if (rc != 0) {
                wa_link_lost(l);

                if (t) {
                    t->len = len[0];
                    lag->len = len[1];
                    pending->len = len[2];
                    *deferred = counted;
                }
            }

            wa_peer_unlock((unsigned) p);

            if (rc == 0) {
                break;
            }
        }

        if (attempt == 2) {
            return -1;
        }
    }

    return 0;
}


/* what only Redis knows; 0, or -1 when it cannot be asked */
static int
wa_render_redis(wa_text_t *t, char *paused, size_t size)
{
    int          rc;
    long long    deferred;
    wa_text_t    lag, pending;

    paused[0] = '\0';

    if (wa_metrics_link() != 0) {
        wa_printf(t, "# HELP wa_relay_redis_up Whether the worker reaches "
                  "Redis\n# TYPE wa_relay_redis_up gauge\nwa_relay_redis_up "
                  "0\n");
        return -1;
    }

    lag.cap = pending.cap = 4096;
    lag.len = pending.len = 0;
    lag.p = malloc(lag.cap);
    pending.p = malloc(pending.cap);

    if (lag.p == NULL || pending.p == NULL) {
        free(lag.p);
        free(pending.p);
        return -1;
    }

    wa_printf(t, "# HELP wa_relay_redis_up Whether the worker reaches Redis\n"
              "# TYPE wa_relay_redis_up gauge\nwa_relay_redis_up 1\n"
              "# HELP wa_relay_stream_length Entries in the stream\n"
              "# TYPE wa_relay_stream_length gauge\n");

    deferred = 0;
    rc = wa_render_parts(t, &lag, &pending, &deferred, paused, size);

    wa_printf(t, "# HELP wa_relay_stream_group_lag Entries of the stream a "
              "consumer group has not read yet\n"
              "# TYPE wa_relay_stream_group_lag gauge\n%.*s"
              "# HELP wa_relay_stream_group_pending Entries a consumer group "
              "read and has not acknowledged\n"
              "# TYPE wa_relay_stream_group_pending gauge\n%.*s",
              (int) lag.len, lag.p, (int) pending.len, pending.p);

    free(lag.p);
    free(pending.p);

    if (rc != 0) {
        return -1;
    }

    /* a number's state is split over partitions: one Redis only, yet */
    if (wa_opts->partitions == 1) {
        wa_render_numbers(t);
    }

    wa_printf(t, "# HELP wa_relay_sender_deferred_entries Outbox entries "
              "deferred, waiting for their time\n"
              "# TYPE wa_relay_sender_deferred_entries gauge\n"
              "wa_relay_sender_deferred_entries %lld\n", deferred);

    return 0;
}


static char *
wa_render_metrics(size_t *len)
{
    char       paused[256], e[512];
    wa_text_t  t;

    t.cap = 16384;
    t.len = 0;
    t.p = malloc(t.cap);
    if (t.p == NULL) {
        return NULL;
    }

    t.p[0] = '\0';
    wa_counters_render(&t);
    (void) wa_render_redis(&t, paused, sizeof(paused));

    wa_printf(&t, "# HELP wa_relay_sender_on Whether this worker sends "
              "(--token-file)\n# TYPE wa_relay_sender_on gauge\n"
              "wa_relay_sender_on %d\n"
              "# HELP wa_relay_sender_rate_per_number The send rate in use "
              "per business number (--rate)\n"
              "# TYPE wa_relay_sender_rate_per_number gauge\n"
              "wa_relay_sender_rate_per_number %ld\n"
              "# HELP wa_relay_sender_paused Whether sending is paused, and "
              "why (<prefix>:sender:paused)\n"
              "# TYPE wa_relay_sender_paused gauge\n",
              wa_opts->token != NULL, wa_opts->rate);

    if (paused[0]) {
        wa_printf(&t, "wa_relay_sender_paused{reason=\"%s\"} 1\n",
                  wa_escape(paused, e, sizeof(e)));

    } else {
        wa_printf(&t, "wa_relay_sender_paused 0\n");
    }

    *len = t.len;

    return t.p;
}


/* 200 "ok", or 503 and why: Redis not reached, this sender paused */
static int
wa_health(char *buf, size_t size)
{
    char  paused[256];

    if (wa_metrics_link() != 0) {
        snprintf(buf, size, "down: redis: not reachable at %s\n",
                 wa_mlink.primary[0] ? wa_mlink.primary : wa_opts->redis);
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }

    /* the sender's pause: one key per partition, every sender's */
    paused[0] = '\0';

    if (wa_render_parts(NULL, NULL, NULL, NULL, paused, sizeof(paused))
        != 0)
    {
        snprintf(buf, size, "down: redis: the connection broke\n");
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }

    if (wa_opts->token && paused[0]) {
        snprintf(buf, size, "down: sender paused: the Graph API refused "
                 "the token (%s)\n", paused);
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }

    snprintf(buf, size, "ok: redis: %s\n", wa_mlink.primary);

    return MHD_HTTP_OK;
}


static enum MHD_Result
wa_respond(struct MHD_Connection *c, unsigned int status, const char *type,
    char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    enum MHD_Result       rc;
    struct MHD_Response  *resp;

    resp = MHD_create_response_from_buffer(len, body, mode);
    if (resp == NULL) {
        return MHD_NO;
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);

    return rc;
}


static const char  wa_no_dashboard[] =
    "the dashboard reads one partition: with --partitions, use /metrics "
    "(docs/metrics.md)\n";


static enum MHD_Result
wa_handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
    char    buf[512], *body;
    size_t  len;
    int     status;

    (void) cls;
    (void) version;
    (void) upload_data;
    (void) upload_size;
    (void) con_cls;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return wa_respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                          "GET only\n", 9, MHD_RESPMEM_PERSISTENT);
    }

    if (strcmp(url, "/metrics") == 0) {
        body = wa_render_metrics(&len);
        if (body == NULL) {
            return MHD_NO;
        }

        return wa_respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4", body,
                          len, MHD_RESPMEM_MUST_FREE);
    }

    if (strcmp(url, "/healthz") == 0) {
        status = wa_health(buf, sizeof(buf));
        return wa_respond(c, status, "text/plain", buf, strlen(buf),
                          MHD_RESPMEM_MUST_COPY);
    }

    if (wa_opts->partitions > 1 && (strcmp(url, "/") == 0
                                    || strcmp(url, "/api/dashboard") == 0))
    {
        return wa_respond(c, MHD_HTTP_NOT_IMPLEMENTED, "text/plain",
                          (char *) wa_no_dashboard,
                          sizeof(wa_no_dashboard) - 1,
                          MHD_RESPMEM_PERSISTENT);
    }

    if (wa_metrics_link() == 0) {
        body = wa_dashboard(url, &wa_mlink, wa_opts, &len, &status);

        if (body != NULL) {
            return wa_respond(c, status, wa_dashboard_type(url), body, len,
                              MHD_RESPMEM_MUST_FREE);
        }
    }

    return wa_respond(c, MHD_HTTP_NOT_FOUND, "text/plain",
                      "not found: /metrics, /healthz, /\n", 34,
                      MHD_RESPMEM_PERSISTENT);
}


/* "ADDR:PORT" (an IPv4 address; a bare port listens on 127.0.0.1) */
static int
wa_metrics_addr(const char *spec, struct sockaddr_in *sin)
{
    char         host[64];
    const char  *colon;
    long         port;

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;

    colon = strrchr(spec, ':');
    snprintf(host, sizeof(host), "%.*s",
             colon ? (int) (colon - spec) : 0, spec);
    port = strtol(colon ? colon + 1 : spec, NULL, 10);

    if (port <= 0 || port > 65535
        || inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &sin->sin_addr)
           != 1)
    {
        return -1;
    }

    sin->sin_port = htons((unsigned short) port);

    return 0;
}


int
wa_metrics_start(const wa_options_t *o)
{
    struct sockaddr_in  sin;

    if (o->metrics == NULL) {
        return 0;
    }

    if (wa_metrics_addr(o->metrics, &sin) != 0) {
        wa_log(WA_LOG_ERROR, "--metrics %s: not ADDR:PORT with an IPv4 "
               "address", o->metrics);
        return -1;
    }

    wa_opts = o;
    wa_link_init(&wa_mlink, o, -1, "metrics: ");

    wa_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD
                                 | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 wa_handle, NULL,
                                 MHD_OPTION_SOCK_ADDR, &sin,
                                 MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int) 10,
                                 MHD_OPTION_END);
    if (wa_daemon == NULL) {
        wa_log(WA_LOG_ERROR, "--metrics %s: cannot listen there", o->metrics);
        return -1;
    }

    wa_counters_on();

    wa_log(WA_LOG_INFO, "metrics: on http://%s/metrics, /healthz and the "
           "dashboard at /", o->metrics);

    return 0;
}


void
wa_metrics_stop(void)
{
    if (wa_daemon) {
        MHD_stop_daemon(wa_daemon);
        wa_daemon = NULL;
        wa_link_close(&wa_mlink);
    }
}
