/*
 * wa-relayd: the curl-multi driver (http.h).
 */

#include <stdio.h>

#include "http.h"


int
wa_http_init(wa_http_t *h, const wa_options_t *o, wa_http_done_pt done,
    void *data)
{
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        return -1;
    }

    /* the Graph API speaks HTTP/2: requests share a connection */
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);

    h->inflight = 0;
    h->timeout_ms = o->request_timeout_ms;
    h->done = done;
    h->data = data;
    snprintf(h->auth, sizeof(h->auth), "Authorization: Bearer %s",
             o->token ? o->token : "");

    return 0;
}


void
wa_http_free(wa_http_t *h)
{
    if (h->multi) {
        curl_multi_cleanup(h->multi);
        h->multi = NULL;
    }
}


CURL *
wa_http_request(wa_http_t *h, const char *url, const char *content_type,
    struct curl_slist **headers, void *req)
{
    CURL  *easy;

    easy = curl_easy_init();
    *headers = curl_slist_append(NULL, h->auth);

    if (content_type && *headers) {
        *headers = curl_slist_append(*headers, content_type);
    }

    if (easy == NULL || *headers == NULL) {
        if (easy) {
            curl_easy_cleanup(easy);
        }

        return NULL;
    }

    if (url) {
        curl_easy_setopt(easy, CURLOPT_URL, url);
    }

    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, *headers);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "wa-relayd");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                     (long) CURL_HTTP_VERSION_2TLS);

    return easy;
}


int
wa_http_add(wa_http_t *h, CURL *easy)
{
    int  still;

    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        return -1;
    }

    h->inflight++;

    /*
     * on its way now: the caller may spend a few Redis round trips on
     * other work before it drives the transfers again
     */
    curl_multi_perform(h->multi, &still);

    return 0;
}


/* the transfers that ended, to their owner */
static int
wa_http_collect(wa_http_t *h)
{
    int        left, rc;
    long       status;
    void      *req;
    CURLMsg   *m;

    rc = 0;

    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }

        status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &req);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(h->multi, m->easy_handle);
        h->inflight--;

        if (h->done(h->data, req, status, m->data.result, rc == 0) != 0) {
            rc = -1;
        }
    }

    return rc;
}


int
wa_http_run(wa_http_t *h, long wait_ms)
{
    int  still;

    if (h->inflight == 0) {
        return 0;
    }

    curl_multi_perform(h->multi, &still);

    if (wa_http_collect(h) != 0) {
        return -1;
    }

    if (h->inflight == 0) {
        return 0;
    }

    curl_multi_poll(h->multi, NULL, 0, (int) wait_ms, NULL);
    curl_multi_perform(h->multi, &still);

    return wa_http_collect(h);
}
