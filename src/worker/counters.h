/*
 * wa-relayd: what the working threads count, for the metrics server
 * (docs/metrics.md): series of counters by family and labels, and latency
 * histograms.  No I/O: the consumer loop, the sender and the media fetcher
 * count here; metrics.c writes it out.  Counting is off (free) until the
 * metrics server turns it on.
 */

#ifndef WA_COUNTERS_H
#define WA_COUNTERS_H

#include <stddef.h>

#include "prom.h"

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

/* counting starts: the metrics server is up */
void wa_counters_on(void);

/* add n to a family's series; a label value of NULL is "" */
void wa_counters_add(wa_family_e f, const char *v1, const char *v2,
    long long n);
void wa_counters_observe(wa_hist_e h, long long us);

/* the first word of a reason ("tier_limit", "131047"), as a label */
void wa_counters_reason(const char *why, char *buf, size_t size);

/* every series and histogram, in Prometheus's text */
void wa_counters_render(wa_text_t *t);

#endif /* WA_COUNTERS_H */
