/*
 * wa-relay: ngx_http_whatsapp_module, directives and configuration.
 *
 * Secrets are read here, at configuration time, from files that must exist,
 * be non-empty and not world-readable; they are never logged.  The
 * directive reference is docs/directives.md.
 */

#include "ngx_http_whatsapp_module.h"


/* a number's decimal text, at compile time */
#define NGX_HTTP_WHATSAPP_STR_(n)  #n
#define NGX_HTTP_WHATSAPP_STR(n)   NGX_HTTP_WHATSAPP_STR_(n)


#define NGX_HTTP_WHATSAPP_SECRET_MAX  4096


static void *ngx_http_whatsapp_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_whatsapp_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_whatsapp_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_whatsapp_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_whatsapp_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_whatsapp_sentinels_check(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf);
static ngx_int_t ngx_http_whatsapp_init_process(ngx_cycle_t *cycle);
static void ngx_http_whatsapp_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_whatsapp_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_view(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_whatsapp_verify_token_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_whatsapp_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_whatsapp_redis_sentinel(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_whatsapp_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
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
      offsetof(ngx_http_whatsapp_main_conf_t, user),
      NULL },

    { ngx_string("whatsapp_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, cluster),
      NULL },

    { ngx_string("whatsapp_redis_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, database),
      NULL },

    { ngx_string("whatsapp_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_whatsapp_main_conf_t, timeout),
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
      offsetof(ngx_http_whatsapp_main_conf_t, master),
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
     *     wmcf->sentinels = NULL;
     *     wmcf->master = { 0, NULL };
     *     wmcf->resolver = NULL;
     *     wmcf->user = { 0, NULL };
     *     wmcf->password = { 0, NULL };
     *     wmcf->used = 0;
     *     wmcf->shm_zone = NULL;
     */

    if (ngx_array_init(&wmcf->sites, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    wmcf->port = NGX_CONF_UNSET;
    wmcf->database = NGX_CONF_UNSET;
    wmcf->cluster = NGX_CONF_UNSET;
    wmcf->timeout = NGX_CONF_UNSET_MSEC;
    wmcf->wait_replicas = NGX_CONF_UNSET;

    return wmcf;
}


static char *
ngx_http_whatsapp_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_whatsapp_main_conf_t  *wmcf = conf;

    ngx_conf_init_value(wmcf->port, 6379);
    ngx_conf_init_value(wmcf->database, 0);
    ngx_conf_init_msec_value(wmcf->timeout, 3000);

    ngx_conf_init_value(wmcf->cluster, 0);

    wmcf->backoff_max = 5000;

    if (wmcf->cluster && (wmcf->database || wmcf->sentinels)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_cluster uses database 0 and no "
                           "sentinels: a Redis Cluster has neither");
        return NGX_CONF_ERROR;
    }

    if (wmcf->cluster && wmcf->port == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_cluster needs a node's "
                           "address and port in whatsapp_redis");
        return NGX_CONF_ERROR;
    }

    if (wmcf->database < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_database must not be negative");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(wmcf->wait_replicas, 0);

    if (wmcf->wait_replicas && wmcf->wait_timeout >= wmcf->timeout) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_wait's timeout must be shorter "
                           "than whatsapp_redis_timeout (%M ms)",
                           wmcf->timeout);
        return NGX_CONF_ERROR;
    }

    if (wmcf->user.len && wmcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_user \"%V\" needs "
                           "whatsapp_redis_password_file", &wmcf->user);
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

    if (conf->webhook && wmcf->cluster == 1 && conf->partitions < 2) {
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

    if (wmcf->used && wmcf->addr.len == 0 && wmcf->sentinels == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"whatsapp_webhook\" needs \"whatsapp_redis\" "
                      "or \"whatsapp_redis_sentinel\" in the http block");
        return NGX_ERROR;
    }

    if (wmcf->sentinels && ngx_http_whatsapp_sentinels_check(cf, wmcf)
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


/*
 * Reads a secret: the file must exist, hold at most 4 KB, be non-empty once
 * surrounding white space is trimmed, and not be readable by others.
 */
static char *
ngx_http_whatsapp_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *out)
{
    u_char           *p, *last;
    off_t             size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "secret file \"%V\" cannot be opened", name);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        goto failed;
    }

    if (fi.st_mode & S_IROTH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" is world-readable "
                           "(chmod o-rwx it)", name);
        goto failed;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_WHATSAPP_SECRET_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" is larger than %d bytes",
                           name, NGX_HTTP_WHATSAPP_SECRET_MAX);
        goto failed;
    }

    p = ngx_pnalloc(cf->pool, (size_t) size + 1);
    if (p == NULL) {
        goto failed;
    }

    n = size ? ngx_read_fd(fd, p, (size_t) size) : 0;
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", name);
        goto failed;
    }

    ngx_close_file(fd);

    last = p + n;

    while (p < last && (*p == ' ' || *p == '\t' || *p == CR || *p == LF)) {
        p++;
    }

    while (last > p
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == CR
               || last[-1] == LF))
    {
        last--;
    }

    if (last == p) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" is empty", name);
        return NGX_CONF_ERROR;
    }

    *last = '\0';

    out->data = p;
    out->len = last - p;

    return NGX_CONF_OK;

failed:

    ngx_close_file(fd);

    return NGX_CONF_ERROR;
}


static void
ngx_http_whatsapp_secret_cleanup(void *data)
{
    ngx_http_whatsapp_secret_t  *s = data;

    wa_hmac_key_free(s->sha256);
    wa_hmac_key_free(s->sha1);
}


static char *
ngx_http_whatsapp_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    char                        *rv;
    ngx_str_t                   *value, secret;
    ngx_pool_cleanup_t          *cln;
    ngx_http_whatsapp_secret_t  *s;

    value = cf->args->elts;

    if (wlcf->secrets == NGX_CONF_UNSET_PTR) {
        wlcf->secrets = ngx_array_create(cf->pool, 2,
                                         sizeof(ngx_http_whatsapp_secret_t));
        if (wlcf->secrets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (wlcf->secrets->nelts == NGX_HTTP_WHATSAPP_MAX_SECRETS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d \"whatsapp_app_secret_file\" "
                           "directives on one level",
                           NGX_HTTP_WHATSAPP_MAX_SECRETS);
        return NGX_CONF_ERROR;
    }

    s = ngx_array_push(wlcf->secrets);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(s, sizeof(ngx_http_whatsapp_secret_t));

    s->file = value[1];

    rv = ngx_http_whatsapp_read_secret(cf, &s->file, &secret);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_whatsapp_secret_cleanup;
    cln->data = s;

    s->sha256 = wa_hmac_key_new(WA_SIG_SHA256, secret.data, secret.len);
    s->sha1 = wa_hmac_key_new(WA_SIG_SHA1, secret.data, secret.len);

    /* only the keyed HMAC contexts keep it from here on */
    ngx_explicit_memzero(secret.data, secret.len);

    if (s->sha256 == NULL || s->sha1 == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "HMAC key from \"%V\" could not be prepared",
                           &s->file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_verify_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_whatsapp_loc_conf_t *wlcf = conf;

    ngx_str_t  *value;

    if (wlcf->verify_token.len != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_whatsapp_read_secret(cf, &value[1], &wlcf->verify_token);
}


static char *
ngx_http_whatsapp_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    u_char              *p;
    ngx_str_t           *value;
    ngx_url_t            u;
#if (NGX_HAVE_UNIX_DOMAIN)
    struct sockaddr_un  *saun;
#endif

    if (wmcf->addr.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    /* a host name is resolved here, once: never at request time */
    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in whatsapp_redis \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis \"%V\" has no address", &u.url);
        return NGX_CONF_ERROR;
    }

#if (NGX_HAVE_UNIX_DOMAIN)
    if (u.family == AF_UNIX) {
        saun = (struct sockaddr_un *) u.addrs[0].sockaddr;

        wmcf->addr.len = ngx_strlen(saun->sun_path);
        wmcf->addr.data = ngx_pnalloc(cf->pool, wmcf->addr.len + 1);
        if (wmcf->addr.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(wmcf->addr.data, (u_char *) saun->sun_path,
                    wmcf->addr.len + 1);
        wmcf->port = 0;

        return NGX_CONF_OK;
    }
#endif

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    wmcf->addr.data = p;
    wmcf->addr.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   p, NGX_SOCKADDR_STRLEN, 0);
    p[wmcf->addr.len] = '\0';

    /* hiredis wants a bare IPv6 address, without brackets */
    if (p[0] == '[') {
        wmcf->addr.data++;
        wmcf->addr.len -= 2;
        wmcf->addr.data[wmcf->addr.len] = '\0';
    }

    wmcf->port = u.port;

    return NGX_CONF_OK;
}


/* whatsapp_redis_sentinel host:port ...: numeric, or names to resolve */
static char *
ngx_http_whatsapp_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_addr_t                          addr;
    ngx_url_t                           u;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (wmcf->sentinels == NULL) {
        wmcf->sentinels = ngx_array_create(cf->pool, 3,
                                 sizeof(ngx_http_whatsapp_sentinel_addr_t));
        if (wmcf->sentinels == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[i];
        u.no_resolve = 1;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.no_port
            || u.host.len == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "whatsapp_redis_sentinel: \"%V\" is not "
                               "host:port", &value[i]);
            return NGX_CONF_ERROR;
        }

        sa = ngx_array_push(wmcf->sentinels);
        if (sa == NULL) {
            return NGX_CONF_ERROR;
        }

        /* IPv6 without its brackets, for hiredis; a copy with a NUL */
        if (u.host.data[0] == '[') {
            u.host.data++;
            u.host.len -= 2;
        }

        sa->host.data = ngx_pnalloc(cf->pool, u.host.len + 1);
        if (sa->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        sa->host.len = u.host.len;
        ngx_cpystrn(sa->host.data, u.host.data, u.host.len + 1);
        sa->port = u.port;
        sa->numeric = (ngx_parse_addr(cf->pool, &addr, sa->host.data,
                                      sa->host.len)
                       == NGX_OK);
    }

    return NGX_CONF_OK;
}


/*
 * Whether a "resolver" directive named servers: the http block's resolver
 * exists without one, empty.  Angie keeps its servers in a list, not an
 * array.
 */
static ngx_uint_t
ngx_http_whatsapp_resolver_has_servers(ngx_resolver_t *r)
{
#ifdef angie_version
    return r->connections != NULL;
#else
    return r->connections.nelts != 0;
#endif
}


/* the name to ask for, and nginx's resolver for sentinels given by name */
static ngx_int_t
ngx_http_whatsapp_sentinels_check(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf)
{
    ngx_uint_t                          i;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (wmcf->master.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"whatsapp_redis_sentinel\" needs "
                      "\"whatsapp_redis_master\": the name the sentinels "
                      "know the primary by");
        return NGX_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->resolver != NGX_CONF_UNSET_PTR && clcf->resolver != NULL
        && ngx_http_whatsapp_resolver_has_servers(clcf->resolver))
    {
        wmcf->resolver = clcf->resolver;
        wmcf->resolver_timeout = clcf->resolver_timeout
                                 == NGX_CONF_UNSET_MSEC
                                 ? 30000 : clcf->resolver_timeout;
    }

    sa = wmcf->sentinels->elts;

    for (i = 0; i < wmcf->sentinels->nelts; i++) {
        if (!sa[i].numeric && wmcf->resolver == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "whatsapp_redis_sentinel \"%V\" is a name: it "
                          "needs a \"resolver\" in the http block (it is "
                          "resolved again whenever the sentinels are "
                          "asked)", &sa[i].host);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* whatsapp_redis_wait N timeout | off */
static char *
ngx_http_whatsapp_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (wmcf->wait_replicas != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        wmcf->wait_replicas = 0;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts != 3) {
        return "takes \"off\" or the number of replicas and a timeout";
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n < 1 || n > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_wait: \"%V\" is not a number of "
                           "replicas from 1 to 64", &value[1]);
        return NGX_CONF_ERROR;
    }

    wmcf->wait_timeout = ngx_parse_time(&value[2], 0);
    if (wmcf->wait_timeout == (ngx_msec_t) NGX_ERROR
        || wmcf->wait_timeout == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "whatsapp_redis_wait: \"%V\" is not a timeout",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    wmcf->wait_replicas = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_whatsapp_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    ngx_str_t  *value;

    if (wmcf->password.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_whatsapp_read_secret(cf, &value[1], &wmcf->password);
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
