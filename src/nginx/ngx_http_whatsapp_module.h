/*
 * wa-relay: ngx_http_whatsapp_module, shared declarations.
 *
 *   ngx_http_whatsapp_module.c   directives, configuration, process hooks
 *   ngx_http_whatsapp_handler.c  the webhook location: GET and POST
 *   ngx_http_whatsapp_call.c     one FCALL for the requests of a turn
 *   ngx_http_whatsapp_redis.c    hiredis on nginx's event loop
 *   ngx_http_whatsapp_status.c   counters in shared memory and their page
 */

#ifndef _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_
#define _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "wa_normalize.h"
#include "wa_signature.h"


#define NGX_HTTP_WHATSAPP_MAX_SECRETS  8


typedef struct {
    wa_hmac_key_t              *sha256;
    wa_hmac_key_t              *sha1;
    ngx_str_t                   file;
} ngx_http_whatsapp_secret_t;


typedef struct {
    ngx_str_t                   addr;       /* text IP, or a socket path */
    ngx_int_t                   port;       /* 0 for a unix socket */
    ngx_str_t                   password;   /* NUL-terminated, or empty */
    ngx_int_t                   database;
    ngx_msec_t                  timeout;
    ngx_msec_t                  backoff_max;
    ngx_uint_t                  used;       /* a webhook location exists */
    ngx_shm_zone_t             *shm_zone;
} ngx_http_whatsapp_main_conf_t;


typedef struct {
    ngx_flag_t                  webhook;
    ngx_flag_t                  status;
    ngx_array_t                *secrets;   /* ngx_http_whatsapp_secret_t */
    ngx_str_t                   verify_token;
    ngx_str_t                   prefix;
    ngx_uint_t                  maxlen;
    time_t                      dedupe;
    ngx_flag_t                  sha1;

    /* derived in merge: "<prefix>:messages" ..., and the dedupe prefix */
    ngx_str_t                   streams[WA_STREAM_COUNT];
    ngx_str_t                   dedupe_prefix;
    ngx_str_t                   maxlen_text;
    ngx_str_t                   dedupe_text;
} ngx_http_whatsapp_loc_conf_t;


/* counters shared by all workers; the status page prints them */
typedef struct {
    ngx_atomic_t                challenge_ok;
    ngx_atomic_t                challenge_rejected;
    ngx_atomic_t                posts;
    ngx_atomic_t                accepted;
    ngx_atomic_t                signature_missing;
    ngx_atomic_t                signature_invalid;
    ngx_atomic_t                secret[NGX_HTTP_WHATSAPP_MAX_SECRETS];
    ngx_atomic_t                events_appended;
    ngx_atomic_t                events_duplicate;
    ngx_atomic_t                unparsed;
    ngx_atomic_t                redis_unavailable;
    ngx_atomic_t                redis_timeouts;
    ngx_atomic_t                redis_errors;
    ngx_atomic_t                redis_connects;
} ngx_http_whatsapp_counters_t;


typedef struct ngx_http_whatsapp_call_s     ngx_http_whatsapp_call_t;
typedef struct ngx_http_whatsapp_pending_s  ngx_http_whatsapp_pending_t;

/* a request in a call; it lives in the call's pool, until the reply */
struct ngx_http_whatsapp_pending_s {
    ngx_http_request_t           *request;   /* NULL once it is gone */
    ngx_http_whatsapp_call_t     *call;
    ngx_http_whatsapp_pending_t  *next;
    wa_event_t                   *events;    /* copies */
    ngx_str_t                    *keys;      /* their dedupe keys */
    ngx_uint_t                    nevents;
};


extern ngx_module_t  ngx_http_whatsapp_module;


ngx_int_t ngx_http_whatsapp_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_whatsapp_json_init(ngx_cycle_t *cycle);
void ngx_http_whatsapp_json_exit(void);
void ngx_http_whatsapp_answer(ngx_http_whatsapp_pending_t *p,
    redisReply *rr, redisReply *count);

ngx_int_t ngx_http_whatsapp_call_add(ngx_http_request_t *r,
    ngx_http_whatsapp_loc_conf_t *wlcf, wa_batch_t *batch,
    ngx_http_whatsapp_pending_t **pending);
ngx_int_t ngx_http_whatsapp_call_state(ngx_http_whatsapp_pending_t *p,
    ngx_uint_t *generation);
void ngx_http_whatsapp_call_link(ngx_uint_t up);
void ngx_http_whatsapp_call_exit(void);

/* told when the link comes up (1) or goes down (0) */
typedef void (*ngx_http_whatsapp_redis_link_pt)(ngx_uint_t up);

ngx_int_t ngx_http_whatsapp_redis_init(ngx_cycle_t *cycle,
    ngx_http_whatsapp_main_conf_t *wmcf,
    ngx_http_whatsapp_redis_link_pt link);
void ngx_http_whatsapp_redis_exit(void);
ngx_int_t ngx_http_whatsapp_redis_state(void);
ngx_int_t ngx_http_whatsapp_redis_command(int argc, const char **argv,
    const size_t *argvlen, redisCallbackFn *fn, void *data,
    ngx_uint_t *generation);
void ngx_http_whatsapp_redis_write(void);
void ngx_http_whatsapp_redis_reset(ngx_uint_t generation,
    const char *reason);
void ngx_http_whatsapp_redis_load_functions(void);

ngx_int_t ngx_http_whatsapp_status_init_zone(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf);
ngx_int_t ngx_http_whatsapp_status_handler(ngx_http_request_t *r);
void ngx_http_whatsapp_count(size_t offset, ngx_atomic_int_t n);

#define ngx_http_whatsapp_inc(field)                                          \
    ngx_http_whatsapp_count(offsetof(ngx_http_whatsapp_counters_t, field), 1)

#define ngx_http_whatsapp_add(field, n)                                       \
    ngx_http_whatsapp_count(offsetof(ngx_http_whatsapp_counters_t, field), n)


#endif /* _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_ */
