/*
 * wa-relay: counters shared by every nginx process, in a slab zone.
 *
 * Counters and histograms are added to with atomic operations; gauges are
 * kept per process in a slot it claims at start (and frees at exit), and
 * summed over the processes still alive when shown, so that a crashed
 * worker's link does not count as up.  The zone keeps its name and size
 * across reloads, so the counters go on; webhook names are matched to
 * their counters again at each start.
 */

/* ngx_config.h, first of all (it sets _GNU_SOURCE), brings <signal.h> */
#include "ngx_http_whatsapp_module.h"


static ngx_http_whatsapp_counters_t  *ngx_http_whatsapp_counters;

/* the configuration's webhook names (wmcf->sites) -> their counters */
static ngx_http_whatsapp_site_t  *ngx_http_whatsapp_sites[
                                     NGX_HTTP_WHATSAPP_MAX_SITES];

static ngx_http_whatsapp_slot_t  *ngx_http_whatsapp_my_slot;


/* the histograms' upper bounds, microseconds (+Inf is the count) */
const ngx_uint_t  ngx_http_whatsapp_bucket_us[NGX_HTTP_WHATSAPP_BUCKETS] = {
    WA_BUCKETS_US
};


/* the kinds counted apart; the last counts every other of wa:account */
ngx_http_whatsapp_kind_t  ngx_http_whatsapp_kinds[] = {
    { WA_STREAM_MESSAGES, ngx_string("message") },
    { WA_STREAM_MESSAGES, ngx_string("smb_message_echoes") },
    { WA_STREAM_MESSAGES, ngx_string("history") },
    { WA_STREAM_STATUSES, ngx_string("status") },
    { WA_STREAM_ACCOUNT, ngx_string("error") },
    { WA_STREAM_ACCOUNT, ngx_string("unparsed") },
    { WA_STREAM_ACCOUNT, ngx_string("message_template_status_update") },
    { WA_STREAM_ACCOUNT, ngx_string("message_template_quality_update") },
    { WA_STREAM_ACCOUNT, ngx_string("message_template_components_update") },
    { WA_STREAM_ACCOUNT, ngx_string("template_category_update") },
    { WA_STREAM_ACCOUNT, ngx_string("phone_number_quality_update") },
    { WA_STREAM_ACCOUNT, ngx_string("phone_number_name_update") },
    { WA_STREAM_ACCOUNT, ngx_string("business_capability_update") },
    { WA_STREAM_ACCOUNT, ngx_string("account_update") },
    { WA_STREAM_ACCOUNT, ngx_string("account_alerts") },
    { WA_STREAM_ACCOUNT, ngx_string("account_review_update") },
    { WA_STREAM_ACCOUNT, ngx_string("user_preferences") },
    { WA_STREAM_ACCOUNT, ngx_string("security") },
    { WA_STREAM_ACCOUNT, ngx_string("calls") },
    { WA_STREAM_ACCOUNT, ngx_string("flows") },
    { WA_STREAM_ACCOUNT, ngx_string("history") },
    { WA_STREAM_ACCOUNT, ngx_string("smb_message_echoes") },
    { WA_STREAM_ACCOUNT, ngx_string("smb_app_state_sync") },
    { WA_STREAM_ACCOUNT, ngx_string("partner_solutions") },
    { WA_STREAM_ACCOUNT, ngx_string("payment_configuration_update") },
    { WA_STREAM_ACCOUNT, ngx_string("messages") },
    { WA_STREAM_ACCOUNT, ngx_string("other") },
    { 0, ngx_null_string }
};

/* the table and NGX_HTTP_WHATSAPP_KINDS agree, or this does not compile */
typedef char  ngx_http_whatsapp_kinds_size_check[
    sizeof(ngx_http_whatsapp_kinds) / sizeof(ngx_http_whatsapp_kind_t)
    == NGX_HTTP_WHATSAPP_KINDS + 1 ? 1 : -1];


/*
 * A site whose name this configuration no longer has: there is one, as
 * a configuration has at most NGX_HTTP_WHATSAPP_MAX_SITES names
 */
static ngx_uint_t
ngx_http_whatsapp_site_unused(ngx_str_t *names, ngx_uint_t n)
{
    ngx_uint_t                 i, k;
    ngx_http_whatsapp_site_t  *site;

    site = ngx_http_whatsapp_counters->site;

    for (k = 0; k < NGX_HTTP_WHATSAPP_MAX_SITES; k++) {
        for (i = 0; i < n; i++) {
            if (site[k].name_len == names[i].len
                && ngx_strncmp(site[k].name, names[i].data, names[i].len)
                   == 0)
            {
                break;
            }
        }

        if (i == n) {
            return k;
        }
    }

    return 0;
}


/* the webhook names of this configuration get their counters */
static ngx_int_t
ngx_http_whatsapp_sites_match(ngx_http_whatsapp_main_conf_t *wmcf)
{
    ngx_str_t                 *names;
    ngx_uint_t                 i, k, free;
    ngx_http_whatsapp_site_t  *site;

    names = wmcf->sites.elts;
    site = ngx_http_whatsapp_counters->site;

    for (i = 0; i < wmcf->sites.nelts; i++) {
        free = NGX_HTTP_WHATSAPP_MAX_SITES;

        for (k = 0; k < NGX_HTTP_WHATSAPP_MAX_SITES; k++) {
            if (site[k].name_len == names[i].len
                && ngx_strncmp(site[k].name, names[i].data, names[i].len)
                   == 0)
            {
                break;
            }

            if (site[k].name_len == 0 && free == NGX_HTTP_WHATSAPP_MAX_SITES)
            {
                free = k;
            }
        }

        if (k == NGX_HTTP_WHATSAPP_MAX_SITES) {
            /* a new name; past 16 names ever, one this configuration lost */
            k = free;

            if (k == NGX_HTTP_WHATSAPP_MAX_SITES) {
                k = ngx_http_whatsapp_site_unused(names, wmcf->sites.nelts);
            }

            ngx_memzero(&site[k], sizeof(ngx_http_whatsapp_site_t));
            ngx_memcpy(site[k].name, names[i].data, names[i].len);
            site[k].name_len = names[i].len;
        }

        ngx_http_whatsapp_sites[i] = &site[k];
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_whatsapp_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: the old cycle's counters go on */
        ngx_http_whatsapp_counters = data;

    } else if (shm_zone->shm.exists) {
        ngx_http_whatsapp_counters = shpool->data;

    } else {
        ngx_http_whatsapp_counters = ngx_slab_calloc(shpool,
                                     sizeof(ngx_http_whatsapp_counters_t));
        if (ngx_http_whatsapp_counters == NULL) {
            return NGX_ERROR;
        }

        shpool->data = ngx_http_whatsapp_counters;
    }

    shm_zone->data = ngx_http_whatsapp_counters;

    return ngx_http_whatsapp_sites_match(wmcf);
}


ngx_int_t
ngx_http_whatsapp_status_init_zone(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("whatsapp_counters");

    size = ngx_align(sizeof(ngx_http_whatsapp_counters_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    wmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_whatsapp_module);
    if (wmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    wmcf->shm_zone->init = ngx_http_whatsapp_init_zone;
    wmcf->shm_zone->data = wmcf;

    return NGX_OK;
}


ngx_http_whatsapp_counters_t *
ngx_http_whatsapp_counters_get(void)
{
    return ngx_http_whatsapp_counters;
}


ngx_http_whatsapp_site_t *
ngx_http_whatsapp_site(ngx_uint_t site)
{
    return site < NGX_HTTP_WHATSAPP_MAX_SITES
           ? ngx_http_whatsapp_sites[site] : NULL;
}


void
ngx_http_whatsapp_count(size_t offset, ngx_atomic_int_t n)
{
    if (ngx_http_whatsapp_counters) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *)
                   ((u_char *) ngx_http_whatsapp_counters + offset), n);
    }
}


void
ngx_http_whatsapp_site_add(ngx_uint_t site, size_t offset,
    ngx_atomic_int_t n)
{
    ngx_http_whatsapp_site_t  *s;

    s = ngx_http_whatsapp_site(site);

    if (s) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *) ((u_char *) s + offset),
                                    n);
    }
}


void
ngx_http_whatsapp_count_reject(ngx_uint_t site, ngx_http_whatsapp_reject_e why)
{
    ngx_http_whatsapp_site_add(site,
        offsetof(ngx_http_whatsapp_site_t, rejected)
        + why * sizeof(ngx_atomic_t), 1);
}


/* the kind's place in ngx_http_whatsapp_kinds */
static ngx_uint_t
ngx_http_whatsapp_kind(const wa_event_t *ev)
{
    ngx_uint_t                 i;
    ngx_http_whatsapp_kind_t  *k;

    for (i = 0; i < NGX_HTTP_WHATSAPP_KINDS - 1; i++) {
        k = &ngx_http_whatsapp_kinds[i];

        if (k->stream == ev->stream && k->name.len == ev->kind_len
            && ngx_memcmp(k->name.data, ev->kind, ev->kind_len) == 0)
        {
            return i;
        }
    }

    return NGX_HTTP_WHATSAPP_KINDS - 1;
}


/* a request's events by kind, added when Redis took them */
void
ngx_http_whatsapp_kinds_count(wa_batch_t *batch, uint32_t *by_kind)
{
    size_t  i;

    for (i = 0; i < batch->nevents; i++) {
        by_kind[ngx_http_whatsapp_kind(&batch->events[i])]++;
    }
}


void
ngx_http_whatsapp_kinds_add(ngx_uint_t site, uint32_t *by_kind)
{
    ngx_uint_t                 i;
    ngx_http_whatsapp_site_t  *s;

    s = ngx_http_whatsapp_site(site);

    for (i = 0; s && i < NGX_HTTP_WHATSAPP_KINDS; i++) {
        if (by_kind[i]) {
            (void) ngx_atomic_fetch_add(&s->events[i], by_kind[i]);
        }
    }
}


ngx_msec_int_t
ngx_http_whatsapp_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_int_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


void
ngx_http_whatsapp_observe(ngx_http_whatsapp_histogram_t *h, ngx_msec_int_t us)
{
    ngx_uint_t  i;

    if (us < 0) {
        us = 0;
    }

    for (i = 0; i < NGX_HTTP_WHATSAPP_BUCKETS; i++) {
        if ((ngx_uint_t) us <= ngx_http_whatsapp_bucket_us[i]) {
            (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count, 1);
    (void) ngx_atomic_fetch_add(&h->sum, us);
}


void
ngx_http_whatsapp_redis_error(ngx_http_whatsapp_error_e e)
{
    ngx_http_whatsapp_counters_t  *c;

    c = ngx_http_whatsapp_counters;

    if (c) {
        (void) ngx_atomic_fetch_add(&c->redis_errors[e], 1);
        c->redis_error_at[e] = ngx_time();
    }
}


void
ngx_http_whatsapp_count_connect(void)
{
    ngx_http_whatsapp_inc(redis_connects);
}


/* a slot for this process's gauges: a free one, or a dead process's */
ngx_int_t
ngx_http_whatsapp_slot_claim(ngx_log_t *log)
{
    ngx_uint_t                 i;
    ngx_atomic_uint_t          pid;
    ngx_http_whatsapp_slot_t  *slot;

    if (ngx_http_whatsapp_counters == NULL) {
        return NGX_OK;
    }

    slot = ngx_http_whatsapp_counters->slot;

    for (i = 0; i < NGX_HTTP_WHATSAPP_SLOTS; i++) {
        pid = slot[i].pid;

        if (pid != 0 && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != ESRCH))
        {
            continue;
        }

        if (ngx_atomic_cmp_set(&slot[i].pid, pid, ngx_pid)) {
            slot[i].up = 0;
            slot[i].waiting = 0;
            ngx_http_whatsapp_my_slot = &slot[i];
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "whatsapp: more than %d nginx processes: this one's Redis "
                  "link is left out of the gauges", NGX_HTTP_WHATSAPP_SLOTS);

    return NGX_OK;
}


void
ngx_http_whatsapp_slot_release(void)
{
    if (ngx_http_whatsapp_my_slot) {
        ngx_http_whatsapp_my_slot->up = 0;
        ngx_http_whatsapp_my_slot->waiting = 0;
        ngx_http_whatsapp_my_slot->pid = 0;
        ngx_http_whatsapp_my_slot = NULL;
    }
}


void
ngx_http_whatsapp_link_up(ngx_uint_t up)
{
    if (ngx_http_whatsapp_my_slot) {
        ngx_http_whatsapp_my_slot->up = up;
    }
}


void
ngx_http_whatsapp_gauge(size_t offset, ngx_atomic_int_t n)
{
    if (ngx_http_whatsapp_my_slot) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *)
                   ((u_char *) ngx_http_whatsapp_my_slot + offset), n);
    }
}
