/*
 * wa-relay: ngx_http_whatsapp_module, shared declarations.
 *
 *   ngx_http_whatsapp_module.c   directives, configuration, process hooks
 *   ngx_http_whatsapp_handler.c  the webhook location: GET and POST
 *   ngx_http_whatsapp_json.c     a body split into events: the parser and
 *                                the scratch pool it works in
 *   ngx_http_whatsapp_call.c     one FCALL for the requests of a turn
 *   ngx_http_whatsapp_cluster.c  the links, and which serves a slot: one
 *                                Redis, or a Redis Cluster's primaries
 *   ngx_http_whatsapp_redis.c    a Redis link: connection, preamble,
 *                                reconnection
 *   ngx_http_whatsapp_sentinel.c the primary's address, asked of sentinels
 *   ngx_http_whatsapp_hiredis.c  hiredis on nginx's event loop
 *   ngx_http_whatsapp_status.c   counters in shared memory
 *   ngx_http_whatsapp_metrics.c  their views: Prometheus, JSON; health
 *
 * Each layer calls the one below it and is called back through a pointer
 * it was given: the call layer never names the handler, the Redis link
 * never names the call layer.
 */

#ifndef _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_
#define _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "wa_ingest.h"
#include "wa_normalize.h"
#include "wa_partition.h"
#include "wa_reply.h"
#include "wa_signature.h"


#define NGX_HTTP_WHATSAPP_MAX_SECRETS  8


typedef struct {
    wa_hmac_key_t              *sha256;
    wa_hmac_key_t              *sha1;
    ngx_str_t                   file;
} ngx_http_whatsapp_secret_t;


/* whatsapp_redis_sentinel: a name is resolved on every question */
typedef struct {
    ngx_str_t                   host;       /* NUL-terminated */
    ngx_int_t                   port;
    ngx_uint_t                  numeric;
} ngx_http_whatsapp_sentinel_addr_t;

/* what went wrong with Redis, for its errors and their last time */
typedef enum {
    NGX_HTTP_WHATSAPP_ERR_CONNECT = 0,      /* a connection not made */
    NGX_HTTP_WHATSAPP_ERR_LOST,             /* a connection lost */
    NGX_HTTP_WHATSAPP_ERR_DENIED,           /* credentials, a permission */
    NGX_HTTP_WHATSAPP_ERR_REPLICA,          /* a replica, not the primary */
    NGX_HTTP_WHATSAPP_ERR_TIMEOUT,          /* no answer in time */
    NGX_HTTP_WHATSAPP_ERR_REPLY,            /* an error reply, a bad reply */
    NGX_HTTP_WHATSAPP_ERR_N
} ngx_http_whatsapp_error_e;

/*
 * What a Redis link is configured with (ngx_http_whatsapp_redis.c and
 * ngx_http_whatsapp_sentinel.c read this, and nothing else of the
 * module's), and what it tells the layer above through the hooks.
 */
typedef struct {
    ngx_array_t                *sentinels;  /* of sentinel_addr_t */
    ngx_str_t                   master;     /* the name they know it by */
    ngx_resolver_t             *resolver;   /* for sentinels by name */
    ngx_msec_t                  resolver_timeout;
    ngx_str_t                   user;       /* ACL user, or empty */
    ngx_str_t                   password;   /* NUL-terminated, or empty */
    ngx_int_t                   database;
    ngx_msec_t                  timeout;
    ngx_flag_t                  cluster;    /* whatsapp_redis_cluster */
    ngx_msec_t                  backoff_max;
    void                      (*error)(ngx_http_whatsapp_error_e e);
    void                      (*connected)(void);
} ngx_http_whatsapp_link_conf_t;

typedef struct {
    ngx_str_t                   addr;       /* text IP, or a socket path */
    ngx_int_t                   port;       /* 0 for a unix socket */
    ngx_http_whatsapp_link_conf_t  redis;
    ngx_int_t                   wait_replicas;  /* 0: no WAIT */
    ngx_msec_t                  wait_timeout;
    ngx_uint_t                  used;       /* a webhook location exists */
    ngx_array_t                 sites;      /* of ngx_str_t: webhook names */
    ngx_shm_zone_t             *shm_zone;
} ngx_http_whatsapp_main_conf_t;


/* the keys of one partition (docs/redis.md, "Partitions") */
typedef struct {
    ngx_str_t                   streams[WA_STREAM_COUNT];
    ngx_str_t                   dedupe_prefix;
    ngx_str_t                   guard;      /* never written: see call.c */
    ngx_uint_t                  slot;       /* their hash slot */
} ngx_http_whatsapp_part_t;


typedef struct {
    ngx_flag_t                  webhook;
    ngx_flag_t                  status;     /* status, metrics or health */
    ngx_uint_t                  site;       /* the webhook name's counters */
    ngx_array_t                *secrets;   /* ngx_http_whatsapp_secret_t */
    ngx_str_t                   verify_token;
    ngx_str_t                   prefix;
    ngx_uint_t                  maxlen;
    time_t                      dedupe;
    ngx_flag_t                  sha1;
    ngx_uint_t                  partitions;

    /* derived in merge: "<prefix>:messages" ... of each partition */
    ngx_http_whatsapp_part_t   *parts;
    ngx_str_t                   maxlen_text;
    ngx_str_t                   dedupe_text;
} ngx_http_whatsapp_loc_conf_t;


/*
 * Counters shared by every worker (ngx_http_whatsapp_status.c), shown by
 * whatsapp_metrics (Prometheus) and whatsapp_status (JSON) from one table
 * (ngx_http_whatsapp_metrics.c).  Webhook counters are kept per webhook
 * name (whatsapp_webhook NAME), the Redis link's for the whole nginx.
 */
#define NGX_HTTP_WHATSAPP_MAX_SITES    16
#define NGX_HTTP_WHATSAPP_SITE_LEN     32
#define NGX_HTTP_WHATSAPP_SLOTS        256   /* nginx processes at once */
#define NGX_HTTP_WHATSAPP_BUCKETS      WA_BUCKETS
#define NGX_HTTP_WHATSAPP_KINDS        27    /* ngx_http_whatsapp_kinds */

/* why a webhook request was not answered 200 */
typedef enum {
    NGX_HTTP_WHATSAPP_REJ_VERIFY_TOKEN = 0,
    NGX_HTTP_WHATSAPP_REJ_SIGNATURE_MISSING,
    NGX_HTTP_WHATSAPP_REJ_SIGNATURE_INVALID,
    NGX_HTTP_WHATSAPP_REJ_REDIS_UNAVAILABLE,
    NGX_HTTP_WHATSAPP_REJ_REDIS_TIMEOUT,
    NGX_HTTP_WHATSAPP_REJ_REDIS_ERROR,
    NGX_HTTP_WHATSAPP_REJ_NOT_REPLICATED,
    NGX_HTTP_WHATSAPP_REJ_N
} ngx_http_whatsapp_reject_e;

typedef struct {
    ngx_atomic_t                bucket[NGX_HTTP_WHATSAPP_BUCKETS]; /* not
                                                           cumulative */
    ngx_atomic_t                count;
    ngx_atomic_t                sum;        /* microseconds */
} ngx_http_whatsapp_histogram_t;

typedef struct {
    u_char                      name[NGX_HTTP_WHATSAPP_SITE_LEN];
    ngx_atomic_t                name_len;   /* 0: a free site */
    ngx_atomic_t                challenge_ok;
    ngx_atomic_t                posts;
    ngx_atomic_t                accepted;
    ngx_atomic_t                rejected[NGX_HTTP_WHATSAPP_REJ_N];
    ngx_atomic_t                secret[NGX_HTTP_WHATSAPP_MAX_SECRETS];
    ngx_atomic_t                events[NGX_HTTP_WHATSAPP_KINDS];
    ngx_atomic_t                duplicates;
    ngx_atomic_t                unparsed;
    ngx_http_whatsapp_histogram_t  request;
} ngx_http_whatsapp_site_t;

/* a process's gauges: summed over the processes alive */
typedef struct {
    ngx_atomic_t                pid;        /* 0: a free slot */
    ngx_atomic_t                up;         /* its Redis link */
    ngx_atomic_t                waiting;    /* its requests waiting on it */
} ngx_http_whatsapp_slot_t;

typedef struct {
    ngx_http_whatsapp_site_t    site[NGX_HTTP_WHATSAPP_MAX_SITES];
    ngx_atomic_t                redis_connects;
    ngx_atomic_t                redis_errors[NGX_HTTP_WHATSAPP_ERR_N];
    ngx_atomic_t                redis_error_at[NGX_HTTP_WHATSAPP_ERR_N];
    ngx_http_whatsapp_histogram_t  redis_call;
    ngx_http_whatsapp_slot_t    slot[NGX_HTTP_WHATSAPP_SLOTS];
} ngx_http_whatsapp_counters_t;

/* an event kind the counters know: its stream and name */
typedef struct {
    wa_stream_t                 stream;
    ngx_str_t                   name;
} ngx_http_whatsapp_kind_t;

extern ngx_http_whatsapp_kind_t  ngx_http_whatsapp_kinds[];
extern const ngx_uint_t          ngx_http_whatsapp_bucket_us[];


typedef struct ngx_http_whatsapp_call_s     ngx_http_whatsapp_call_t;
typedef struct ngx_http_whatsapp_pending_s  ngx_http_whatsapp_pending_t;

/* what became of a request's events in its call */
typedef enum {
    NGX_HTTP_WHATSAPP_APPENDED = 0,     /* counted: appended, or duplicates */
    NGX_HTTP_WHATSAPP_NOT_CONNECTED,    /* not sent: no Redis link */
    NGX_HTTP_WHATSAPP_LOST,             /* sent; the link lost before a reply */
    NGX_HTTP_WHATSAPP_NOT_SENT,         /* not sent: no memory */
    NGX_HTTP_WHATSAPP_REDIS_ERROR,      /* Redis answered an error */
    NGX_HTTP_WHATSAPP_BAD_REPLY,        /* a reply that does not count them */
    NGX_HTTP_WHATSAPP_NOT_REPLICATED    /* appended, not on enough replicas */
} ngx_http_whatsapp_outcome_e;

typedef struct {
    ngx_http_whatsapp_outcome_e   outcome;
    ngx_uint_t                    events;
    ngx_uint_t                    appended;  /* APPENDED */
    ngx_str_t                     error;     /* REDIS_ERROR */
    ngx_int_t                     type;      /* BAD_REPLY: the reply's type */
    ngx_int_t                     replicas;  /* NOT_REPLICATED: WAIT's count */
} ngx_http_whatsapp_result_t;

typedef void (*ngx_http_whatsapp_done_pt)(void *data,
    ngx_http_whatsapp_result_t *res);

/*
 * A request in a call; it lives in the call's pool, until the reply.  A
 * request whose events go to several partitions has a part in the call of
 * each, and the caller holds their group's own (call NULL, group set).
 */
struct ngx_http_whatsapp_pending_s {
    void                         *data;      /* the caller's; NULL: gone */
    ngx_http_whatsapp_done_pt     done;
    ngx_http_whatsapp_call_t     *call;
    void                         *group;
    wa_ingest_req_t               req;       /* copies of its events, their
                                                dedupe keys; the next one */
    ngx_http_whatsapp_result_t    res;       /* kept for WAIT's reply */
};


extern ngx_module_t  ngx_http_whatsapp_module;


ngx_int_t ngx_http_whatsapp_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_whatsapp_json_init(ngx_cycle_t *cycle);
void ngx_http_whatsapp_json_exit(void);
ngx_int_t ngx_http_whatsapp_json_split(ngx_str_t *body, int64_t now,
    wa_batch_t *batch);
void ngx_http_whatsapp_json_done(void);

/*
 * The request's events join the call of this turn; done(data, result) is
 * called once, unless the caller said it is gone (forget, timeout).
 * NGX_DECLINED: Redis is not connected; NGX_ERROR: no memory.
 */
ngx_int_t ngx_http_whatsapp_call_add(ngx_http_whatsapp_loc_conf_t *wlcf,
    wa_batch_t *batch, ngx_http_whatsapp_done_pt done, void *data,
    ngx_http_whatsapp_pending_t **pending);
void ngx_http_whatsapp_call_forget(ngx_http_whatsapp_pending_t *p);
void ngx_http_whatsapp_call_timeout(ngx_http_whatsapp_pending_t *p);
void ngx_http_whatsapp_call_links(void);
void ngx_http_whatsapp_call_exit(void);
void ngx_http_whatsapp_fanout_exit(void);

/* ngx_http_whatsapp_secret.c: the secrets' directives */
char *ngx_http_whatsapp_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *out);
char *ngx_http_whatsapp_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_whatsapp_verify_token_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

/* ngx_http_whatsapp_redis_conf.c: where Redis is, and how to talk to it */
char *ngx_http_whatsapp_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_whatsapp_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_whatsapp_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_whatsapp_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_whatsapp_sentinels_check(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf);

/* a connection to one Redis (ngx_http_whatsapp_redis.c) */
typedef struct ngx_http_whatsapp_link_s  ngx_http_whatsapp_link_t;

/* told when a link comes up (1) or goes down (0) */
typedef void (*ngx_http_whatsapp_link_changed_pt)(
    ngx_http_whatsapp_link_t *link, ngx_uint_t up);

ngx_http_whatsapp_link_t *ngx_http_whatsapp_link_open(ngx_cycle_t *cycle,
    ngx_http_whatsapp_link_conf_t *conf, ngx_str_t *addr, ngx_int_t port,
    ngx_http_whatsapp_link_changed_pt changed);
void ngx_http_whatsapp_link_stop(ngx_http_whatsapp_link_t *link);
void ngx_http_whatsapp_link_start(ngx_http_whatsapp_link_t *link);
ngx_uint_t ngx_http_whatsapp_link_is(ngx_http_whatsapp_link_t *link,
    ngx_str_t *addr, ngx_int_t port);
u_char *ngx_http_whatsapp_link_why(ngx_http_whatsapp_link_t *link,
    u_char *p, u_char *last);
ngx_int_t ngx_http_whatsapp_link_state(ngx_http_whatsapp_link_t *link);
ngx_int_t ngx_http_whatsapp_link_command(ngx_http_whatsapp_link_t *link,
    int argc, const char **argv, const size_t *argvlen, redisCallbackFn *fn,
    void *data, ngx_uint_t *generation);
void ngx_http_whatsapp_link_write(ngx_http_whatsapp_link_t *link);
void ngx_http_whatsapp_link_reset(ngx_http_whatsapp_link_t *link,
    ngx_uint_t generation, const char *reason);
void ngx_http_whatsapp_link_load_functions(ngx_http_whatsapp_link_t *link);

/*
 * The links of a worker, and which serves a hash slot
 * (ngx_http_whatsapp_cluster.c): one link, or one per primary of a Redis
 * Cluster.  changed(up) is told when the links change; up: every slot
 * has a link that is up.
 */
typedef void (*ngx_http_whatsapp_redis_changed_pt)(ngx_uint_t up);

ngx_int_t ngx_http_whatsapp_redis_init(ngx_cycle_t *cycle,
    ngx_http_whatsapp_main_conf_t *wmcf,
    ngx_http_whatsapp_redis_changed_pt changed);
void ngx_http_whatsapp_redis_exit(void);
ngx_http_whatsapp_link_t *ngx_http_whatsapp_redis_route(ngx_uint_t slot);
ngx_int_t ngx_http_whatsapp_redis_state(ngx_uint_t slot);
ngx_http_whatsapp_link_t *ngx_http_whatsapp_redis_answer(
    ngx_http_whatsapp_link_t *link, ngx_uint_t generation,
    const redisReply *rr, ngx_uint_t *ask);
void ngx_http_whatsapp_redis_refresh(void);

/* the primary named by the sentinels: addr NULL if none did */
typedef void (*ngx_http_whatsapp_sentinel_found_pt)(void *data,
    ngx_str_t *addr, ngx_int_t port);

void ngx_http_whatsapp_sentinel_ask(ngx_http_whatsapp_link_conf_t *conf,
    ngx_log_t *log, ngx_http_whatsapp_sentinel_found_pt found, void *data);
void ngx_http_whatsapp_sentinel_exit(void);

/* hiredis on nginx's loop (ngx_http_whatsapp_hiredis.c) */
ngx_int_t ngx_http_whatsapp_hiredis_attach(redisAsyncContext *ac,
    ngx_log_t *log);
void ngx_http_whatsapp_hiredis_write(redisAsyncContext *ac);
ngx_uint_t ngx_http_whatsapp_redis_denied(const u_char *error, size_t len);

/* ngx_http_whatsapp_status.c: the counters */
ngx_int_t ngx_http_whatsapp_status_init_zone(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf);
ngx_http_whatsapp_counters_t *ngx_http_whatsapp_counters_get(void);
ngx_http_whatsapp_site_t *ngx_http_whatsapp_site(ngx_uint_t site);
void ngx_http_whatsapp_site_add(ngx_uint_t site, size_t offset,
    ngx_atomic_int_t n);
void ngx_http_whatsapp_count(size_t offset, ngx_atomic_int_t n);
void ngx_http_whatsapp_count_reject(ngx_uint_t site,
    ngx_http_whatsapp_reject_e why);
void ngx_http_whatsapp_kinds_count(wa_batch_t *batch, uint32_t *by_kind);
void ngx_http_whatsapp_kinds_add(ngx_uint_t site, uint32_t *by_kind);
void ngx_http_whatsapp_observe(ngx_http_whatsapp_histogram_t *h,
    ngx_msec_int_t us);
ngx_msec_int_t ngx_http_whatsapp_now_us(void);
void ngx_http_whatsapp_redis_error(ngx_http_whatsapp_error_e e);
void ngx_http_whatsapp_count_connect(void);
ngx_int_t ngx_http_whatsapp_slot_claim(ngx_log_t *log);
void ngx_http_whatsapp_slot_release(void);
void ngx_http_whatsapp_gauge(size_t offset, ngx_atomic_int_t n);
void ngx_http_whatsapp_link_up(ngx_uint_t up);

/* ngx_http_whatsapp_metrics.c: the views of the counters, and health */
ngx_int_t ngx_http_whatsapp_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_whatsapp_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_whatsapp_health_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_whatsapp_redis_health(ngx_str_t *why, u_char *buf,
    size_t size);

#define ngx_http_whatsapp_inc(field)                                          \
    ngx_http_whatsapp_count(offsetof(ngx_http_whatsapp_counters_t, field), 1)

#define ngx_http_whatsapp_site_inc(site, field)                               \
    ngx_http_whatsapp_site_add(site,                                          \
                               offsetof(ngx_http_whatsapp_site_t, field), 1)

#define ngx_http_whatsapp_gauge_add(field, n)                                 \
    ngx_http_whatsapp_gauge(offsetof(ngx_http_whatsapp_slot_t, field), n)


#endif /* _NGX_HTTP_WHATSAPP_MODULE_H_INCLUDED_ */
