/*
 * wa-relayd: what the worker reports (--metrics ADDR:PORT, docs/metrics.md).
 *
 * The threads that do the work (the consumer loop, the sender, the media
 * fetcher) never wait on the reporting: they publish their counters into
 * this file's tables under a mutex held for a copy, and the HTTP server
 * (libmicrohttpd, a thread of its own) renders them, asking Redis what
 * only Redis knows (lag, pending entries) on a link of its own.
 */

#ifndef WA_METRICS_H
#define WA_METRICS_H

#include <stddef.h>

#include "options.h"

typedef enum {
    WA_HIST_BATCH = 0,          /* a batch's wa_apply_1, sent to replied */
    WA_HIST_GRAPH,              /* a Graph API request, sent to answered */
    WA_HIST_PACING,             /* an outbox entry, ready to sent */
    WA_HIST_N
} wa_hist_e;

typedef enum {
    WA_FAM_EVENTS = 0,          /* stream, kind: applied or duplicates */
    WA_FAM_ENTRIES,             /* outcome: applied, duplicate, ... */
    WA_FAM_SENDER,              /* outcome, reason */
    WA_FAM_GRAPH_ERRORS,        /* code */
    WA_FAM_MEDIA,               /* outcome */
    WA_FAM_N
} wa_family_e;

/* start the server when --metrics is set: 0, or -1 (logged) */
int wa_metrics_start(const wa_options_t *o);
void wa_metrics_stop(void);

/* add n to a family's series; a label value of NULL is "" */
void wa_metrics_add(wa_family_e f, const char *v1, const char *v2,
    long long n);
void wa_metrics_observe(wa_hist_e h, long long us);

/* the first word of a reason ("tier_limit", "131047"), as a label */
void wa_metrics_reason(const char *why, char *buf, size_t size);

#endif /* WA_METRICS_H */
