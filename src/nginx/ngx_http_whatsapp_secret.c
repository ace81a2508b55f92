/*
 * wa-relay: the secrets' directives (whatsapp_secret_file,
 * whatsapp_verify_token_file), and the one way a secret is read.
 *
 * Secrets are read at configuration time, from files that must exist, be
 * non-empty and not world-readable; they are never logged.
 */

#include "ngx_http_whatsapp_module.h"


#define NGX_HTTP_WHATSAPP_SECRET_MAX  4096


/*
 * Reads a secret: the file must exist, hold at most 4 KB, be non-empty once
 * surrounding white space is trimmed, and not be readable by others.
 */
char *
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


char *
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


char *
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
