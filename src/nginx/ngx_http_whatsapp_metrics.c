/*
 * wa-relay: the counters' views, from one table: whatsapp_metrics
 * (Prometheus text format 0.0.4) and whatsapp_status (JSON); and
 * whatsapp_health, whether this nginx can append (docs/metrics.md).
 */

/* ngx_config.h, first of all (it sets _GNU_SOURCE), brings <signal.h> */
#include "ngx_http_whatsapp_module.h"


#define NGX_HTTP_WHATSAPP_METRICS_TYPE  "text/plain; version=0.0.4"

#define ngx_http_whatsapp_site_off(f)  offsetof(ngx_http_whatsapp_site_t, f)
#define ngx_http_whatsapp_rej_off(r)                                          \
    (offsetof(ngx_http_whatsapp_site_t, rejected)                             \
     + NGX_HTTP_WHATSAPP_REJ_ ## r * sizeof(ngx_atomic_t))


/* a counter of each webhook name: its JSON name, its Prometheus series */
typedef struct {
    char                       *json;
    char                       *family;
    char                       *label;      /* "reason=\"...\"" or NULL */
    size_t                      offset;     /* in ngx_http_whatsapp_site_t */
} ngx_http_whatsapp_series_t;

typedef struct {
    char                       *name;
    char                       *type;
    char                       *help;
} ngx_http_whatsapp_family_t;


static ngx_http_whatsapp_family_t  ngx_http_whatsapp_families[] = {
    { "wa_relay_webhook_requests_total", "counter",
      "Webhook POSTs received" },
    { "wa_relay_webhook_accepted_total", "counter",
      "Webhook POSTs answered 200: every event appended or a duplicate" },
    { "wa_relay_webhook_rejected_total", "counter",
      "Webhook requests not answered 200, by reason (403, 401 or 503)" },
    { "wa_relay_verifications_total", "counter",
      "hub.verify_token challenges answered" },
    { "wa_relay_events_duplicate_total", "counter",
      "Events Redis found appended already (Meta's redeliveries)" },
    { "wa_relay_events_unparsed_total", "counter",
      "Bodies or pieces kept whole as kind unparsed" },
    { NULL, NULL, NULL }
};


static ngx_http_whatsapp_series_t  ngx_http_whatsapp_series[] = {
    { "posts", "wa_relay_webhook_requests_total", NULL,
      ngx_http_whatsapp_site_off(posts) },
    { "accepted", "wa_relay_webhook_accepted_total", NULL,
      ngx_http_whatsapp_site_off(accepted) },
    { "challenge_ok", "wa_relay_verifications_total", NULL,
      ngx_http_whatsapp_site_off(challenge_ok) },
    { "challenge_rejected", "wa_relay_webhook_rejected_total",
      "reason=\"verify_token\"", ngx_http_whatsapp_rej_off(VERIFY_TOKEN) },
    { "signature_missing", "wa_relay_webhook_rejected_total",
      "reason=\"signature_missing\"",
      ngx_http_whatsapp_rej_off(SIGNATURE_MISSING) },
    { "signature_invalid", "wa_relay_webhook_rejected_total",
      "reason=\"signature_invalid\"",
      ngx_http_whatsapp_rej_off(SIGNATURE_INVALID) },
    { "redis_unavailable", "wa_relay_webhook_rejected_total",
      "reason=\"redis_unavailable\"",
      ngx_http_whatsapp_rej_off(REDIS_UNAVAILABLE) },
    { "redis_timeouts", "wa_relay_webhook_rejected_total",
      "reason=\"redis_timeout\"", ngx_http_whatsapp_rej_off(REDIS_TIMEOUT) },
    { "redis_errors", "wa_relay_webhook_rejected_total",
      "reason=\"redis_error\"", ngx_http_whatsapp_rej_off(REDIS_ERROR) },
    { "redis_not_replicated", "wa_relay_webhook_rejected_total",
      "reason=\"not_replicated\"",
      ngx_http_whatsapp_rej_off(NOT_REPLICATED) },
    { "events_duplicate", "wa_relay_events_duplicate_total", NULL,
      ngx_http_whatsapp_site_off(duplicates) },
    { "unparsed", "wa_relay_events_unparsed_total", NULL,
      ngx_http_whatsapp_site_off(unparsed) },
    { NULL, NULL, NULL, 0 }
};


static char  *ngx_http_whatsapp_error_names[] = {
    "connect", "lost", "denied", "replica", "timeout", "reply"
};


/* the gauges, summed over the processes alive */
typedef struct {
    ngx_uint_t                  processes;
    ngx_uint_t                  up;
    ngx_uint_t                  waiting;
} ngx_http_whatsapp_gauges_t;


static void
ngx_http_whatsapp_gauges(ngx_http_whatsapp_counters_t *c,
    ngx_http_whatsapp_gauges_t *g)
{
    ngx_uint_t                 i;
    ngx_atomic_uint_t          pid;
    ngx_http_whatsapp_slot_t  *slot;

    ngx_memzero(g, sizeof(ngx_http_whatsapp_gauges_t));

    for (i = 0; i < NGX_HTTP_WHATSAPP_SLOTS; i++) {
        slot = &c->slot[i];
        pid = slot->pid;

        /* a worker that crashed left its slot behind: not counted */
        if (pid == 0 || (kill((ngx_pid_t) pid, 0) != 0 && ngx_errno == ESRCH))
        {
            continue;
        }

        g->processes++;
        g->up += slot->up ? 1 : 0;
        g->waiting += (ngx_atomic_int_t) slot->waiting > 0
                      ? slot->waiting : 0;
    }
}


#define ngx_http_whatsapp_value(site, off)                                    \
    (*(ngx_atomic_t *) ((u_char *) (site) + (off)))


static u_char *
ngx_http_whatsapp_prom_histogram(u_char *p, char *name, ngx_str_t *label,
    ngx_http_whatsapp_histogram_t *h)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  n;

    n = 0;

    for (i = 0; i < NGX_HTTP_WHATSAPP_BUCKETS; i++) {
        n += h->bucket[i];
        p = ngx_sprintf(p, "%s_bucket{%V%sle=\"%.6f\"} %uA\n", name, label,
                        label->len ? "," : "",
                        ngx_http_whatsapp_bucket_us[i] / 1000000.0, n);
    }

    p = ngx_sprintf(p, "%s_bucket{%V%sle=\"+Inf\"} %uA\n", name, label,
                    label->len ? "," : "", h->count);
    p = ngx_sprintf(p, "%s_sum%s%V%s %.6f\n", name, label->len ? "{" : "",
                    label, label->len ? "}" : "", h->sum / 1000000.0);
    p = ngx_sprintf(p, "%s_count%s%V%s %uA\n", name, label->len ? "{" : "",
                    label, label->len ? "}" : "", h->count);

    return p;
}


/* the webhook names' counts by secret matched and by event kind */
static u_char *
ngx_http_whatsapp_prom_counted(u_char *p, ngx_http_whatsapp_counters_t *c)
{
    ngx_uint_t                 i, k;
    ngx_http_whatsapp_site_t  *s;

    p = ngx_sprintf(p, "# HELP wa_relay_signature_matched_total Webhook "
                    "POSTs whose signature matched this app secret (the "
                    "order of whatsapp_app_secret_file)\n"
                    "# TYPE wa_relay_signature_matched_total counter\n");

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
        s = &c->site[i];

        for (k = 0; s->name_len && k < NGX_HTTP_WHATSAPP_MAX_SECRETS; k++) {
            if (k == 0 || s->secret[k]) {
                p = ngx_sprintf(p, "wa_relay_signature_matched_total{"
                                "location=\"%*s\",secret=\"%ui\"} %uA\n",
                                (size_t) s->name_len, s->name, k + 1,
                                s->secret[k]);
            }
        }
    }

    p = ngx_sprintf(p, "# HELP wa_relay_events_total Events Redis took "
                    "(appended, or found a duplicate), by stream and kind\n"
                    "# TYPE wa_relay_events_total counter\n");

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
        s = &c->site[i];

        for (k = 0; s->name_len && k < NGX_HTTP_WHATSAPP_KINDS; k++) {
            /* the kinds of every day always, Meta's others once seen */
            if (k > 3 && s->events[k] == 0) {
                continue;
            }

            p = ngx_sprintf(p, "wa_relay_events_total{location=\"%*s\","
                            "stream=\"%s\",kind=\"%V\"} %uA\n",
                            (size_t) s->name_len, s->name,
                            wa_stream_names[ngx_http_whatsapp_kinds[k].stream],
                            &ngx_http_whatsapp_kinds[k].name, s->events[k]);
        }
    }

    return p;
}


/* the webhook names' series, family by family */
static u_char *
ngx_http_whatsapp_prom_sites(u_char *p, ngx_http_whatsapp_counters_t *c)
{
    ngx_uint_t                   i;
    ngx_str_t                    label;
    u_char                       buf[64];
    ngx_http_whatsapp_site_t    *s;
    ngx_http_whatsapp_series_t  *se;
    ngx_http_whatsapp_family_t  *f;

    for (f = ngx_http_whatsapp_families; f->name; f++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
                        f->name, f->type);

        for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
            s = &c->site[i];

            for (se = ngx_http_whatsapp_series; s->name_len && se->json;
                 se++)
            {
                if (ngx_strcmp(se->family, f->name) != 0) {
                    continue;
                }

                p = ngx_sprintf(p, "%s{location=\"%*s\"%s%s} %uA\n",
                                f->name, (size_t) s->name_len, s->name,
                                se->label ? "," : "",
                                se->label ? se->label : "",
                                ngx_http_whatsapp_value(s, se->offset));
            }
        }
    }

    p = ngx_http_whatsapp_prom_counted(p, c);

    p = ngx_sprintf(p, "# HELP wa_relay_webhook_request_duration_seconds "
                    "Time in the module from the body read to the answer\n"
                    "# TYPE wa_relay_webhook_request_duration_seconds "
                    "histogram\n");

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
        s = &c->site[i];

        if (s->name_len == 0) {
            continue;
        }

        label.data = buf;
        label.len = ngx_snprintf(buf, sizeof(buf), "location=\"%*s\"",
                                 (size_t) s->name_len, s->name) - buf;

        p = ngx_http_whatsapp_prom_histogram(p,
                "wa_relay_webhook_request_duration_seconds", &label,
                &s->request);
    }

    return p;
}


static u_char *
ngx_http_whatsapp_prom_redis(u_char *p, ngx_http_whatsapp_counters_t *c)
{
    ngx_uint_t                  i;
    ngx_str_t                   none = ngx_null_string;
    ngx_http_whatsapp_gauges_t  g;

    ngx_http_whatsapp_gauges(c, &g);

    p = ngx_sprintf(p, "# HELP wa_relay_redis_links_up nginx processes "
                    "whose Redis link is up, function loaded\n"
                    "# TYPE wa_relay_redis_links_up gauge\n"
                    "wa_relay_redis_links_up %ui\n"
                    "# HELP wa_relay_redis_links nginx processes with a "
                    "Redis link\n"
                    "# TYPE wa_relay_redis_links gauge\n"
                    "wa_relay_redis_links %ui\n"
                    "# HELP wa_relay_redis_waiting_requests Webhook "
                    "requests waiting on Redis\n"
                    "# TYPE wa_relay_redis_waiting_requests gauge\n"
                    "wa_relay_redis_waiting_requests %ui\n"
                    "# HELP wa_relay_redis_connects_total Connections to "
                    "Redis made\n"
                    "# TYPE wa_relay_redis_connects_total counter\n"
                    "wa_relay_redis_connects_total %uA\n",
                    g.up, g.processes, g.waiting, c->redis_connects);

    p = ngx_sprintf(p, "# HELP wa_relay_redis_errors_total Redis errors, "
                    "by class\n"
                    "# TYPE wa_relay_redis_errors_total counter\n");

    for (i = 0; i < NGX_HTTP_WHATSAPP_ERR_N; i++) {
        p = ngx_sprintf(p, "wa_relay_redis_errors_total{class=\"%s\"} %uA\n",
                        ngx_http_whatsapp_error_names[i], c->redis_errors[i]);
    }

    p = ngx_sprintf(p, "# HELP wa_relay_redis_last_error_timestamp_seconds "
                    "When a Redis error of this class last happened (0: "
                    "never)\n"
                    "# TYPE wa_relay_redis_last_error_timestamp_seconds "
                    "gauge\n");

    for (i = 0; i < NGX_HTTP_WHATSAPP_ERR_N; i++) {
        p = ngx_sprintf(p, "wa_relay_redis_last_error_timestamp_seconds{"
                        "class=\"%s\"} %uA\n",
                        ngx_http_whatsapp_error_names[i],
                        c->redis_error_at[i]);
    }

    p = ngx_sprintf(p, "# HELP wa_relay_redis_call_duration_seconds Round "
                    "trip of a call to Redis (one FCALL for the requests "
                    "of a turn)\n"
                    "# TYPE wa_relay_redis_call_duration_seconds "
                    "histogram\n");

    return ngx_http_whatsapp_prom_histogram(p,
               "wa_relay_redis_call_duration_seconds", &none,
               &c->redis_call);
}


static u_char *
ngx_http_whatsapp_json_site(u_char *p, ngx_http_whatsapp_site_t *s)
{
    ngx_uint_t                   k;
    ngx_http_whatsapp_series_t  *se;

    for (se = ngx_http_whatsapp_series; se->json; se++) {
        p = ngx_sprintf(p, "\"%s\":%uA,", se->json,
                        ngx_http_whatsapp_value(s, se->offset));
    }

    for (k = 0; k < NGX_HTTP_WHATSAPP_MAX_SECRETS; k++) {
        p = ngx_sprintf(p, "\"secret_%ui_matched\":%uA,", k + 1,
                        s->secret[k]);
    }

    p = ngx_sprintf(p, "\"events\":{");

    for (k = 0; k < NGX_HTTP_WHATSAPP_KINDS; k++) {
        if (s->events[k]) {
            p = ngx_sprintf(p, "\"%s/%V\":%uA,",
                            wa_stream_names[ngx_http_whatsapp_kinds[k].stream],
                            &ngx_http_whatsapp_kinds[k].name, s->events[k]);
        }
    }

    if (p[-1] == ',') {
        p--;
    }

    return ngx_sprintf(p, "}");
}


/*
 * JSON: the webhook counters summed over the names (the names the
 * plain page had), each name's, and the Redis link's
 */
static u_char *
ngx_http_whatsapp_json(u_char *p, ngx_http_whatsapp_counters_t *c)
{
    ngx_uint_t                   i, k, first;
    ngx_atomic_uint_t            sum, events;
    ngx_http_whatsapp_gauges_t   g;
    ngx_http_whatsapp_series_t  *se;

    *p++ = '{';

    for (se = ngx_http_whatsapp_series; se->json; se++) {
        sum = 0;

        for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
            sum += ngx_http_whatsapp_value(&c->site[i], se->offset);
        }

        p = ngx_sprintf(p, "\"%s\":%uA,", se->json, sum);
    }

    events = 0;

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
        for (k = 0; k < NGX_HTTP_WHATSAPP_KINDS; k++) {
            events += c->site[i].events[k];
        }

        events -= c->site[i].duplicates;
    }

    for (k = 0; k < NGX_HTTP_WHATSAPP_MAX_SECRETS; k++) {
        sum = 0;

        for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
            sum += c->site[i].secret[k];
        }

        p = ngx_sprintf(p, "\"secret_%ui_matched\":%uA,", k + 1, sum);
    }

    ngx_http_whatsapp_gauges(c, &g);

    p = ngx_sprintf(p, "\"events_appended\":%uA,\"redis_connects\":%uA,"
                    "\"redis_links_up\":%ui,\"redis_links\":%ui,"
                    "\"redis_waiting\":%ui,\"locations\":{",
                    events, c->redis_connects, g.up, g.processes, g.waiting);

    first = 1;

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SITES; i++) {
        if (c->site[i].name_len == 0) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%*s\":{", first ? "" : ",",
                        (size_t) c->site[i].name_len, c->site[i].name);
        p = ngx_http_whatsapp_json_site(p, &c->site[i]);
        *p++ = '}';
        first = 0;
    }

    return ngx_sprintf(p, "}}\n");
}


/* what a page of the counters may take at most */
static size_t
ngx_http_whatsapp_views_size(void)
{
    return 4096 + NGX_HTTP_WHATSAPP_MAX_SITES
           * (NGX_HTTP_WHATSAPP_KINDS + NGX_HTTP_WHATSAPP_MAX_SECRETS
              + NGX_HTTP_WHATSAPP_BUCKETS + 32) * 256;
}


static ngx_int_t
ngx_http_whatsapp_send_view(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* GET or HEAD only, the body discarded, a buffer for the view */
static ngx_int_t
ngx_http_whatsapp_view_start(ngx_http_request_t *r, size_t size,
    ngx_buf_t **b)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_whatsapp_counters_get() == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    *b = ngx_create_temp_buf(r->pool, size);
    if (*b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_whatsapp_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_http_whatsapp_counters_t  *c;

    rc = ngx_http_whatsapp_view_start(r, ngx_http_whatsapp_views_size(), &b);
    if (rc != NGX_OK) {
        return rc;
    }

    c = ngx_http_whatsapp_counters_get();

    b->last = ngx_http_whatsapp_prom_sites(b->last, c);
    b->last = ngx_http_whatsapp_prom_redis(b->last, c);

    return ngx_http_whatsapp_send_view(r, NGX_HTTP_OK,
                                       NGX_HTTP_WHATSAPP_METRICS_TYPE, b);
}


ngx_int_t
ngx_http_whatsapp_status_handler(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    ngx_buf_t  *b;

    rc = ngx_http_whatsapp_view_start(r, ngx_http_whatsapp_views_size(), &b);
    if (rc != NGX_OK) {
        return rc;
    }

    b->last = ngx_http_whatsapp_json(b->last,
                                     ngx_http_whatsapp_counters_get());

    return ngx_http_whatsapp_send_view(r, NGX_HTTP_OK, "application/json",
                                       b);
}


/* 200 when this worker's Redis link is up with its function; 503, why */
ngx_int_t
ngx_http_whatsapp_health_handler(ngx_http_request_t *r)
{
    u_char      why[256];
    ngx_int_t   rc, up;
    ngx_str_t   reason;
    ngx_buf_t  *b;

    rc = ngx_http_whatsapp_view_start(r, 512, &b);
    if (rc != NGX_OK) {
        return rc;
    }

    up = ngx_http_whatsapp_redis_health(&reason, why, sizeof(why));

    b->last = ngx_sprintf(b->last, "%s: %V\n", up == NGX_OK ? "ok" : "down",
                          &reason);

    if (up != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "whatsapp health: 503: %V", &reason);
    }

    return ngx_http_whatsapp_send_view(r, up == NGX_OK
                                          ? NGX_HTTP_OK
                                          : NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "text/plain", b);
}
