/*
 * wa-relayd: the one curl-multi driver, for the sender's requests and the
 * media fetcher's.  A request gets the options every Graph API request
 * has (the token, the timeouts, keep-alive, HTTP and HTTPS only); its
 * owner adds what is its own (a body, where the answer goes) and adds it;
 * wa_http_run drives what is in flight and hands each transfer that ended
 * to the owner's done callback.
 */

#ifndef WA_HTTP_H
#define WA_HTTP_H

#include <curl/curl.h>

#include "options.h"

/*
 * A transfer ended: req as given to wa_http_request, status the HTTP
 * status (0: none), cc what libcurl said.  ok is 0 once an earlier one
 * returned -1 (the link is gone): the request is only to be let go of.
 * 0, or -1 when the link is gone.
 */
typedef int (*wa_http_done_pt)(void *data, void *req, long status,
    CURLcode cc, int ok);

typedef struct {
    CURLM              *multi;
    long                inflight;
    long                timeout_ms;     /* --request-timeout-ms */
    char                auth[1024];     /* Authorization: Bearer <token> */
    wa_http_done_pt     done;
    void               *data;
} wa_http_t;

int wa_http_init(wa_http_t *h, const wa_options_t *o, wa_http_done_pt done,
    void *data);
void wa_http_free(wa_http_t *h);

/*
 * A request to url (NULL: set by the caller, CURLOPT_URL) carrying the
 * token, and content_type when not NULL:
 * the handle, and in *headers the list to free with it (curl_slist_free_all
 * after curl_easy_cleanup); NULL when out of memory.
 */
CURL *wa_http_request(wa_http_t *h, const char *url, const char *content_type,
    struct curl_slist **headers, void *req);

/* into the transfers, on its way at once: 0, or -1 */
int wa_http_add(wa_http_t *h, CURL *easy);

/*
 * The transfers driven: what is ready, then a wait of up to wait_ms for
 * more, each one that ended given to done.  0, or -1 when done said the
 * link is gone.
 */
int wa_http_run(wa_http_t *h, long wait_ms);

#endif /* WA_HTTP_H */
