/*
 * wa-relayd: what the worker reports (--metrics ADDR:PORT, docs/metrics.md).
 *
 * The threads that do the work (the consumer loop, the sender, the media
 * fetcher) never wait on the reporting: they count into counters.c, under
 * a mutex held for an addition, and the HTTP server (libmicrohttpd, a
 * thread of its own) renders that, asking Redis what only Redis knows (lag,
 * pending entries) on a link of its own.  Nothing below it names it.
 */

#ifndef WA_METRICS_H
#define WA_METRICS_H

#include <stddef.h>

#include "options.h"

/* start the server when --metrics is set: 0, or -1 (logged) */
int wa_metrics_start(const wa_options_t *o);
void wa_metrics_stop(void);

#endif /* WA_METRICS_H */
