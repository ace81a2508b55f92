/*
 * wa-relay: counters shared by every worker, and the page that shows them.
 *
 * A small slab zone; the counters survive a reload because the zone keeps
 * its name and size.
 */

#include "ngx_http_whatsapp_module.h"


static ngx_http_whatsapp_counters_t  *ngx_http_whatsapp_counters;


static ngx_int_t
ngx_http_whatsapp_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the old cycle's counters go on */
        shm_zone->data = data;
        ngx_http_whatsapp_counters = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_whatsapp_counters = shpool->data;
        return NGX_OK;
    }

    ngx_http_whatsapp_counters = ngx_slab_calloc(shpool,
                                     sizeof(ngx_http_whatsapp_counters_t));
    if (ngx_http_whatsapp_counters == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ngx_http_whatsapp_counters;
    shm_zone->data = ngx_http_whatsapp_counters;

    return NGX_OK;
}


ngx_int_t
ngx_http_whatsapp_status_init_zone(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf)
{
    ngx_str_t  name = ngx_string("whatsapp_counters");

    wmcf->shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                           &ngx_http_whatsapp_module);
    if (wmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    wmcf->shm_zone->init = ngx_http_whatsapp_init_zone;

    return NGX_OK;
}


void
ngx_http_whatsapp_count(size_t offset, ngx_atomic_int_t n)
{
    if (ngx_http_whatsapp_counters) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *)
                   ((u_char *) ngx_http_whatsapp_counters + offset), n);
    }
}


typedef struct {
    char    *name;
    size_t   offset;
} ngx_http_whatsapp_counter_name_t;


#define ngx_http_whatsapp_counter(f)                                          \
    { #f, offsetof(ngx_http_whatsapp_counters_t, f) }

static ngx_http_whatsapp_counter_name_t  ngx_http_whatsapp_counter_names[] = {
    ngx_http_whatsapp_counter(challenge_ok),
    ngx_http_whatsapp_counter(challenge_rejected),
    ngx_http_whatsapp_counter(posts),
    ngx_http_whatsapp_counter(accepted),
    ngx_http_whatsapp_counter(signature_missing),
    ngx_http_whatsapp_counter(signature_invalid),
    ngx_http_whatsapp_counter(events_appended),
    ngx_http_whatsapp_counter(events_duplicate),
    ngx_http_whatsapp_counter(unparsed),
    ngx_http_whatsapp_counter(redis_unavailable),
    ngx_http_whatsapp_counter(redis_timeouts),
    ngx_http_whatsapp_counter(redis_errors),
    ngx_http_whatsapp_counter(redis_connects),
    ngx_http_whatsapp_counter(redis_not_replicated),
    { NULL, 0 }
};


ngx_int_t
ngx_http_whatsapp_status_handler(ngx_http_request_t *r)
{
    size_t                             size;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_uint_t                         i;
    ngx_chain_t                        out;
    ngx_atomic_t                      *v;
    ngx_http_whatsapp_counter_name_t  *c;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_whatsapp_counters == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    size = (sizeof(ngx_http_whatsapp_counter_names)
            / sizeof(ngx_http_whatsapp_counter_name_t)
            + NGX_HTTP_WHATSAPP_MAX_SECRETS)
           * (32 + NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (c = ngx_http_whatsapp_counter_names; c->name; c++) {
        v = (ngx_atomic_t *) ((u_char *) ngx_http_whatsapp_counters
                              + c->offset);
        b->last = ngx_sprintf(b->last, "%s %uA\n", c->name, *v);
    }

    for (i = 0; i < NGX_HTTP_WHATSAPP_MAX_SECRETS; i++) {
        b->last = ngx_sprintf(b->last, "secret_%ui_matched %uA\n", i + 1,
                              ngx_http_whatsapp_counters->secret[i]);
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
