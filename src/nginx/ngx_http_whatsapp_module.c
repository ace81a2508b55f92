/*
 * wa-relay: ngx_http_whatsapp_module, directives and configuration.
 *
 * The directive reference is docs/directives.md.  The secrets' directives
 * are in ngx_http_whatsapp_secret.c, Redis's in
 * ngx_http_whatsapp_redis_conf.c.
 */

#include "ngx_http_whatsapp_module.h"


/* a number's decimal text, at compile time */
#define NGX_HTTP_WHATSAPP_STR_(n)  #n
#define NGX_HTTP_WHATSAPP_STR(n)   NGX_HTTP_WHATSAPP_STR_(n)


static void *ngx_http_whatsapp_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_whatsapp_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_whatsapp_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_whatsapp_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_whatsapp_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_whatsapp_init_process(ngx_cycle_t *cycle);
static void ngx_http_whatsapp_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_whatsapp_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_view(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_partitions(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_whatsapp_maxlen(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_dedupe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* what whatsapp_status, whatsapp_metrics and whatsapp_health answer with */
static ngx_http_handler_pt  ngx_http_whatsapp_status_pt =
    ngx_http_whatsapp_status_handler;
static ngx_http_handler_pt  ngx_http_whatsapp_metrics_pt =
    ngx_http_whatsapp_metrics_handler;
static ngx_http_handler_pt  ngx_http_whatsapp_health_pt =
    ngx_http_whatsapp_health_handler;


static ngx_command_t  ngx_http_whatsapp_commands[] = {

    { ngx_string("whatsapp_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_whatsapp_webhook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_whatsapp_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_whatsapp_status_pt },

    { ngx_string("whatsapp_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_whatsapp_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_whatsapp_metrics_pt },

    { ngx_string("whatsapp_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_whatsapp_view,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &ngx_http_whatsapp_health_pt },

    { ngx_string("whatsapp_app_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_verify_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_verify_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_signature_sha1"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_loc_conf_t, sha1),
      NULL },

    { ngx_string("whatsapp_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, redis.user),
      NULL },

    { ngx_string("whatsapp_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, redis.cluster),
      NULL },

    { ngx_string("whatsapp_redis_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, redis.database),
      NULL },

    { ngx_string("whatsapp_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, redis.timeout),
      NULL },

    { ngx_string("whatsapp_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_whatsapp_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_redis_master"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, redis.master),
      NULL },

    { ngx_string("whatsapp_redis_wait"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_whatsapp_redis_wait,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_stream_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_loc_conf_t, prefix),
      NULL },

    { ngx_string("whatsapp_partitions"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_partitions,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_stream_maxlen"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_maxlen,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("whatsapp_dedupe"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_whatsapp_dedupe,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_whatsapp_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_whatsapp_postconfiguration,   /* postconfiguration */

    ngx_http_whatsapp_create_main_conf,    /* create main configuration */
    ngx_http_whatsapp_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_whatsapp_create_loc_conf,     /* create location configuration */
    ngx_http_whatsapp_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_whatsapp_module = {
    NGX_MODULE_V1,
    &ngx_http_whatsapp_module_ctx,         /* module context */
    ngx_http_whatsapp_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_whatsapp_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_whatsapp_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_whatsapp_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_whatsapp_main_conf_t));
    if (wmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wmcf->addr = { 0, NULL };
     *     wmcf->redis.sentinels = NULL;
     *     wmcf->redis.master = { 0, NULL };
     *     wmcf->redis.resolver = NULL;
     *     wmcf->redis.user = { 0, NULL };
     *     wmcf->redis.password = { 0, NULL };
     *     wmcf->used = 0;
     *     wmcf->shm_zone = NULL;
     */

    if (ngx_array_init(&wmcf->sites, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    wmcf->port = NGX_CONF_UNSET;
    wmcf->redis.database = NGX_CONF_UNSET;
    wmcf->redis.cluster = NGX_CONF_UNSET;
    wmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    wmcf->wait_replicas = NGX_CONF_UNSET;

    return wmcf;
}


static char *
ngx_http_whatsapp_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_whatsapp_main_conf_t  *wmcf = conf;

    ngx_conf_init_value(wmcf->port, 6379);
    ngx_conf_init_value(wmcf->redis.database, 0);
    ngx_conf_init_msec_value(wmcf->redis.timeout, 3000);

    ngx_conf_init_value(wmcf->redis.cluster, 0);

    wmcf->redis.backoff_max = 5000;

    /* what the links tell: counted in the shared zone */
    wmcf->redis.error = ngx_http_whatsapp_redis_error;
    wmcf->redis.connected = ngx_http_whatsapp_count_connect;

    if (wmcf->redis.cluster
        && (wmcf->redis.database || wmcf->redis.sentinels))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_cluster uses database 0 and no "
                           "sentinels: a Redis Cluster has neither");
        return NGX_CONF_ERROR;
    }

    if (wmcf->redis.cluster && wmcf->port == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_cluster needs a node's "
                           "address and port in whatsapp_redis");
        return NGX_CONF_ERROR;
    }

    if (wmcf->redis.database < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_database must not be negative");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(wmcf->wait_replicas, 0);

    if (wmcf->wait_replicas && wmcf->wait_timeout >= wmcf->redis.timeout) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_wait's timeout must be shorter "
                           "than whatsapp_redis_timeout (%M ms)",
                           wmcf->redis.timeout);
        return NGX_CONF_ERROR;
    }

    if (wmcf->redis.user.len && wmcf->redis.password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_user \"%V\" needs "
                           "whatsapp_redis_password_file", &wmcf->redis.user);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_whatsapp_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_whatsapp_loc_conf_t  *wlcf;

    wlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_whatsapp_loc_conf_t));
    if (wlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wlcf->webhook = 0;
     *     wlcf->status = 0;
     *     wlcf->verify_token = { 0, NULL };
     *     wlcf->prefix = { 0, NULL };
     *     wlcf->parts = NULL;
     *     wlcf->maxlen_text = { 0, NULL };
     *     wlcf->dedupe_text = { 0, NULL };
     */

    wlcf->secrets = NGX_CONF_UNSET_PTR;
    wlcf->verify_token.len = NGX_CONF_UNSET_SIZE;
    wlcf->maxlen = NGX_CONF_UNSET_UINT;
    wlcf->dedupe = NGX_CONF_UNSET;
    wlcf->sha1 = NGX_CONF_UNSET;
    wlcf->partitions = NGX_CONF_UNSET_UINT;

    return wlcf;
}


/* "<prefix>:<name>" */
static ngx_int_t
ngx_http_whatsapp_key(ngx_conf_t *cf, ngx_str_t *out, ngx_str_t *prefix,
    const char *name)
{
    size_t  len;

    len = prefix->len + 1 + ngx_strlen(name);

    out->data = ngx_pnalloc(cf->pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_sprintf(out->data, "%V:%s", prefix, name) - out->data;

    return NGX_OK;
}


/*
 * The keys of each partition: "<prefix>:messages" ... with one partition,
 * "<prefix>:{<tag>}:messages" ... with several (src/core/wa_partition.h)
 */
static ngx_int_t
ngx_http_whatsapp_parts(ngx_conf_t *cf, ngx_http_whatsapp_loc_conf_t *conf)
{
    size_t                     len;
    ngx_str_t                  prefix;
    ngx_uint_t                 p, i;
    ngx_http_whatsapp_part_t  *part;

    conf->parts = ngx_pcalloc(cf->pool,
                              conf->partitions
                              * sizeof(ngx_http_whatsapp_part_t));
    if (conf->parts == NULL) {
        return NGX_ERROR;
    }

    len = conf->prefix.len + WA_TAG_LEN + 3;

    for (p = 0; p < conf->partitions; p++) {
        part = &conf->parts[p];

        prefix.data = ngx_pnalloc(cf->pool, len);
        if (prefix.data == NULL) {
            return NGX_ERROR;
        }

        prefix.len = wa_partition_prefix((char *) conf->prefix.data,
                                         conf->prefix.len, p,
                                         conf->partitions,
                                         (char *) prefix.data, len);

        for (i = 0; i < WA_STREAM_COUNT; i++) {
            if (ngx_http_whatsapp_key(cf, &part->streams[i], &prefix,
                                      wa_stream_names[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_http_whatsapp_key(cf, &part->dedupe_prefix, &prefix,
                                  "dedupe:")
            != NGX_OK
            || ngx_http_whatsapp_key(cf, &part->guard, &prefix,
                                     WA_KEY_MIGRATING)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        part->slot = wa_key_slot((char *) prefix.data, prefix.len);
    }

    return NGX_OK;
}


static char *
ngx_http_whatsapp_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_whatsapp_loc_conf_t *prev = parent;
    ngx_http_whatsapp_loc_conf_t *conf = child;

    u_char                         *p;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, NULL);

    if (conf->verify_token.len == NGX_CONF_UNSET_SIZE) {
        conf->verify_token = prev->verify_token;

        if (conf->verify_token.len == NGX_CONF_UNSET_SIZE) {
            ngx_str_null(&conf->verify_token);
        }
    }

    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "wa");
    ngx_conf_merge_uint_value(conf->maxlen, prev->maxlen, 1000000);
    ngx_conf_merge_value(conf->dedupe, prev->dedupe, 86400);
    ngx_conf_merge_value(conf->sha1, prev->sha1, 0);

    if (conf->webhook
        && (conf->secrets == NULL || conf->secrets->nelts == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"whatsapp_webhook\" needs at least one "
                           "\"whatsapp_app_secret_file\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_uint_value(conf->partitions, prev->partitions, 1);

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_whatsapp_module);

    if (conf->webhook && wmcf->redis.cluster == 1 && conf->partitions < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_cluster needs whatsapp_partitions "
                           "of 2 or more: the keys of one partition share a "
                           "hash slot, those of the single-instance layout "
                           "do not");
        return NGX_CONF_ERROR;
    }

    if (conf->webhook && ngx_http_whatsapp_parts(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->maxlen_text.data = p;
    conf->maxlen_text.len = ngx_sprintf(p, "%ui", conf->maxlen) - p;

    p += NGX_INT_T_LEN;

    conf->dedupe_text.data = p;
    conf->dedupe_text.len = ngx_sprintf(p, "%T", conf->dedupe) - p;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_whatsapp_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_whatsapp_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_whatsapp_module);

    if (wmcf->used && wmcf->addr.len == 0 && wmcf->redis.sentinels == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"whatsapp_webhook\" needs \"whatsapp_redis\" "
                      "or \"whatsapp_redis_sentinel\" in the http block");
        return NGX_ERROR;
    }

    if (wmcf->redis.sentinels && ngx_http_whatsapp_sentinels_check(cf, wmcf)
                           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_whatsapp_status_init_zone(cf, wmcf);
}


/* the link's state: the gauges, then the calls waiting for it */
static void
ngx_http_whatsapp_link(ngx_uint_t up)
{
    ngx_http_whatsapp_link_up(up);
    ngx_http_whatsapp_call_links();
}


static ngx_int_t
ngx_http_whatsapp_init_process(ngx_cycle_t *cycle)
{
    ngx_http_whatsapp_main_conf_t  *wmcf;

    /* the cache manager and loader never serve webhooks */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    wmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_whatsapp_module);
    if (wmcf == NULL || !wmcf->used) {
        return NGX_OK;
    }

    if (ngx_http_whatsapp_json_init(cycle) != NGX_OK
        || ngx_http_whatsapp_slot_claim(cycle->log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_whatsapp_redis_init(cycle, wmcf, ngx_http_whatsapp_link);
}


static void
ngx_http_whatsapp_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_whatsapp_call_exit();
    ngx_http_whatsapp_fanout_exit();
    ngx_http_whatsapp_redis_exit();
    ngx_http_whatsapp_json_exit();
    ngx_http_whatsapp_slot_release();
}


static char *
ngx_http_whatsapp_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_str_t                      *value, name, *names;
    ngx_uint_t                      i;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_whatsapp_main_conf_t  *wmcf;

    if (wlcf->webhook || wlcf->status) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* the name its counters go by, in whatsapp_metrics and the status */
    ngx_str_set(&name, "webhook");

    if (cf->args->nelts == 2) {
        name = value[1];

        for (i = 0; i < name.len; i++) {
            if (!(isalnum(name.data[i]) || name.data[i] == '_'
                  || name.data[i] == '-' || name.data[i] == '.'))
            {
                break;
            }
        }

        if (name.len == 0 || name.len >= NGX_HTTP_WHATSAPP_SITE_LEN
            || i < name.len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid webhook name \"%V\": letters, "
                               "digits, \"_\", \"-\" and \".\", up to %d",
                               &name, NGX_HTTP_WHATSAPP_SITE_LEN - 1);
            return NGX_CONF_ERROR;
        }
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_whatsapp_module);
    names = wmcf->sites.elts;

    for (i = 0; i < wmcf->sites.nelts; i++) {
        if (names[i].len == name.len
            && ngx_strncmp(names[i].data, name.data, name.len) == 0)
        {
            break;
        }
    }

    if (i == wmcf->sites.nelts) {
        if (i == NGX_HTTP_WHATSAPP_MAX_SITES) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "more than %d webhook names",
                               NGX_HTTP_WHATSAPP_MAX_SITES);
            return NGX_CONF_ERROR;
        }

        names = ngx_array_push(&wmcf->sites);
        if (names == NULL) {
            return NGX_CONF_ERROR;
        }

        *names = name;
    }

    wlcf->webhook = 1;
    wlcf->site = i;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_whatsapp_handler;

    wmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_view(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_http_handler_pt       *handler = cmd->post;
    ngx_http_core_loc_conf_t  *clcf;

    if (wlcf->webhook || wlcf->status) {
        return "is duplicate";
    }

    wlcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = *handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_partitions(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (wlcf->partitions != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n <= 0 || n > WA_PARTITIONS_MAX) {
        return "must be a number of partitions from 1 to "
               NGX_HTTP_WHATSAPP_STR(WA_PARTITIONS_MAX);
    }

    wlcf->partitions = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_maxlen(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (wlcf->maxlen != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        wlcf->maxlen = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n <= 0) {
        return "must be a positive number of entries or \"off\"";
    }

    wlcf->maxlen = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_dedupe(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_str_t  *value;

    if (wlcf->dedupe != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        wlcf->dedupe = 0;
        return NGX_CONF_OK;
    }

    wlcf->dedupe = ngx_parse_time(&value[1], 1);
    if (wlcf->dedupe == (time_t) NGX_ERROR || wlcf->dedupe <= 0) {
        return "must be a time of at least one second, or \"off\"";
    }

    return NGX_CONF_OK;
}
