/*
 * wa-relay: what a Graph API answer means for the message.  Pure.
 */

#ifndef WA_GRAPH_H
#define WA_GRAPH_H

#include <stddef.h>

typedef enum {
    WA_SENT = 0,
    WA_RETRY,                       /* back off, then try again */
    WA_RETRY_NUMBER,                /* the business number is over its rate */
    WA_RETRY_RECIPIENT,             /* the pair limit: 4^n s per recipient */
    WA_RETRY_LATER,                 /* 131057: throughput upgrade, a minute */
    WA_GIVE_UP,                     /* never retried */
    WA_TOKEN                        /* the token is bad: pause all sending */
} wa_verdict_t;

typedef struct {
    wa_verdict_t   verdict;
    long           code;            /* Meta's error code, 0 if none */
    long           http_status;
    char           wamid[256];
    char           reason[256];     /* code and title, for logs and dead */
} wa_graph_result_t;

/*
 * http_status 0: no answer (timeout, connection error; reason in err).
 */
void wa_graph_result(wa_graph_result_t *res, long http_status,
    const char *body, size_t len, const char *err);

const char *wa_verdict_name(wa_verdict_t v);

/*
 * How long before attempt attempts + 1, in ms, for a verdict to retry:
 * base doubled per attempt up to about 10 minutes; the pair limit's
 * quadrupled up to about an hour (Meta's 4^n); a throughput upgrade's
 * (131057) a minute's worth, 60 bases.  The sender's and the media
 * fetcher's, from --retry-base-ms.
 */
long long wa_graph_backoff(wa_verdict_t v, long long base, long attempts);

#endif /* WA_GRAPH_H */
