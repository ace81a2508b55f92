/*
 * wa-relay: a webhook body split into events (src/core/wa_normalize.c),
 * and the memory that takes.
 *
 * A body is split in a pool of the worker's own: the parsed tree, the
 * events and the few values jansson makes for digests.  Once the events
 * are copied into the turn's call the pool is emptied, its blocks kept
 * warm for the next body rather than allocated and freed with each
 * request; one that an unusually large body made grow past SCRATCH_KEEP
 * blocks is given back whole.  jansson allocates from it only while a body
 * is split (there is no other jansson use in nginx): otherwise, malloc and
 * free.  The worker's JSON parser is reused the same way: the events'
 * strings live in it until the next body is split.
 */

#include "ngx_http_whatsapp_module.h"

#include <jansson.h>


#define NGX_HTTP_WHATSAPP_SCRATCH_SIZE  16384
#define NGX_HTTP_WHATSAPP_SCRATCH_KEEP  16

static ngx_pool_t        *ngx_http_whatsapp_scratch;
static ngx_pool_t        *ngx_http_whatsapp_json_pool;
static wa_json_parser_t  *ngx_http_whatsapp_parser;


static void *
ngx_http_whatsapp_json_malloc(size_t size)
{
    if (ngx_http_whatsapp_json_pool) {
        return ngx_palloc(ngx_http_whatsapp_json_pool, size);
    }

    return malloc(size);
}


static void
ngx_http_whatsapp_json_free(void *p)
{
    if (ngx_http_whatsapp_json_pool == NULL) {
        free(p);
    }
}


static ngx_pool_t *
ngx_http_whatsapp_scratch_get(void)
{
    if (ngx_http_whatsapp_scratch == NULL) {
        ngx_http_whatsapp_scratch =
            ngx_create_pool(NGX_HTTP_WHATSAPP_SCRATCH_SIZE, ngx_cycle->log);
    }

    ngx_http_whatsapp_json_pool = ngx_http_whatsapp_scratch;

    return ngx_http_whatsapp_scratch;
}


static void
ngx_http_whatsapp_scratch_done(void)
{
    ngx_uint_t   n;
    ngx_pool_t  *p;

    ngx_http_whatsapp_json_pool = NULL;

    n = 0;
    for (p = ngx_http_whatsapp_scratch; p; p = p->d.next) {
        n++;
    }

    if (n > NGX_HTTP_WHATSAPP_SCRATCH_KEEP) {
        ngx_destroy_pool(ngx_http_whatsapp_scratch);
        ngx_http_whatsapp_scratch = NULL;
        return;
    }

    ngx_reset_pool(ngx_http_whatsapp_scratch);
}


ngx_int_t
ngx_http_whatsapp_json_init(ngx_cycle_t *cycle)
{
    json_set_alloc_funcs(ngx_http_whatsapp_json_malloc,
                         ngx_http_whatsapp_json_free);

    ngx_http_whatsapp_parser = wa_json_parser_create();

    if (ngx_http_whatsapp_parser == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "whatsapp webhook: no memory for the JSON parser");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_whatsapp_json_exit(void)
{
    if (ngx_http_whatsapp_parser) {
        wa_json_parser_destroy(ngx_http_whatsapp_parser);
        ngx_http_whatsapp_parser = NULL;
    }

    if (ngx_http_whatsapp_scratch) {
        ngx_destroy_pool(ngx_http_whatsapp_scratch);
        ngx_http_whatsapp_scratch = NULL;
    }
}


static void *
ngx_http_whatsapp_palloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


/*
 * The body's events in batch: 0, or NGX_ERROR when memory ran out (the
 * batch's error says where).  Its memory lasts until json_done().
 */
ngx_int_t
ngx_http_whatsapp_json_split(ngx_str_t *body, int64_t now, wa_batch_t *batch)
{
    batch->alloc = ngx_http_whatsapp_palloc;
    batch->alloc_data = ngx_http_whatsapp_scratch_get();
    batch->parser = ngx_http_whatsapp_parser;

    if (batch->alloc_data == NULL) {
        batch->error = "no memory for the scratch pool";
        return NGX_ERROR;
    }

    if (wa_normalize(batch, (char *) body->data, body->len, now) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the events are copied: the scratch pool is emptied for the next body */
void
ngx_http_whatsapp_json_done(void)
{
    ngx_http_whatsapp_scratch_done();
}
