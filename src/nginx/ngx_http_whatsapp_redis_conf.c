/*
 * wa-relay: the directives that say where Redis is and how to talk to it:
 * whatsapp_redis, whatsapp_redis_sentinel, whatsapp_redis_password_file,
 * whatsapp_redis_wait (docs/directives.md).  Names are resolved here, at
 * configuration time, or by nginx's resolver later: never on a request.
 */

#include "ngx_http_whatsapp_module.h"


char *
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
char *
ngx_http_whatsapp_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_addr_t                          addr;
    ngx_url_t                           u;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (wmcf->redis.sentinels == NULL) {
        wmcf->redis.sentinels = ngx_array_create(cf->pool, 3,
                                 sizeof(ngx_http_whatsapp_sentinel_addr_t));
        if (wmcf->redis.sentinels == NULL) {
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

        sa = ngx_array_push(wmcf->redis.sentinels);
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
ngx_int_t
ngx_http_whatsapp_sentinels_check(ngx_conf_t *cf,
    ngx_http_whatsapp_main_conf_t *wmcf)
{
    ngx_uint_t                          i;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_whatsapp_sentinel_addr_t  *sa;

    if (wmcf->redis.master.len == 0) {
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
        wmcf->redis.resolver = clcf->resolver;
        wmcf->redis.resolver_timeout = clcf->resolver_timeout
                                 == NGX_CONF_UNSET_MSEC
                                 ? 30000 : clcf->resolver_timeout;
    }

    sa = wmcf->redis.sentinels->elts;

    for (i = 0; i < wmcf->redis.sentinels->nelts; i++) {
        if (!sa[i].numeric && wmcf->redis.resolver == NULL) {
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
char *
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


char *
ngx_http_whatsapp_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_whatsapp_main_conf_t *wmcf = conf;

    ngx_str_t  *value;

    if (wmcf->redis.password.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_whatsapp_read_secret(cf, &value[1], &wmcf->redis.password);
}
