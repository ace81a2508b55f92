/*
 * wa-relayd: what the working threads count (counters.h): series of
 * counters by family and label, latency histograms, under a mutex held for
 * an addition; written out as Prometheus text for the metrics server.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "wa_streams.h"

#define WA_SERIES_MAX   512
#define WA_LABEL_MAX    64

typedef struct {
    wa_family_e  f;
    char         v1[WA_LABEL_MAX];
    char         v2[WA_LABEL_MAX];
    long long    n;
} wa_series_t;

typedef struct {
    long long    bucket[WA_BUCKETS];        /* not cumulative */
    long long    count;
    long long    sum;                       /* microseconds */
} wa_hist_t;

static const struct {
    const char  *name;
    const char  *help;
    const char  *l1;
    const char  *l2;
} wa_families[WA_FAM_N] = {
    { "wa_relay_worker_events_total",
      "Events the state functions took, by stream and kind", "stream",
      "kind" },
    { "wa_relay_worker_entries_total",
      "Stream entries by what became of them: applied, duplicate, skipped, "
      "dead, error, reclaimed, trimmed, capped", "stream", "outcome" },
    { "wa_relay_sender_outcomes_total",
      "Outbox entries by outcome (sent, refused, deferred, failed, "
      "duplicate) and reason", "outcome", "reason" },
    { "wa_relay_sender_graph_errors_total",
      "Graph API errors answered to the sender, by Meta's code", "code",
      NULL },
    { "wa_relay_media_total",
      "Media files by outcome: fetched, already, retried, dead, skipped",
      "outcome", NULL },
};

static const struct {
    const char  *name;
    const char  *help;
} wa_hists[WA_HIST_N] = {
    { "wa_relay_worker_batch_duration_seconds",
      "A batch's call to wa_apply_1, sent to answered" },
    { "wa_relay_sender_graph_duration_seconds",
      "A Graph API request of the sender, sent to answered" },
    { "wa_relay_sender_pacing_wait_seconds",
      "An outbox entry, from ready to sent: the pacing's wait" },
};

static const long long  wa_bucket_us[WA_BUCKETS] = { WA_BUCKETS_US };

static pthread_mutex_t    wa_counters_lock = PTHREAD_MUTEX_INITIALIZER;
static wa_series_t        wa_series[WA_SERIES_MAX];
static int                wa_nseries;
static wa_hist_t          wa_hist[WA_HIST_N];

static atomic_int         wa_counting;


void
wa_counters_on(void)
{
    atomic_store(&wa_counting, 1);
}


static void
wa_copy_label(char *to, const char *v)
{
    snprintf(to, WA_LABEL_MAX, "%s", v ? v : "");
}


void
wa_counters_add(wa_family_e f, const char *v1, const char *v2, long long n)
{
    int           i;
    wa_series_t  *s;

    if (!atomic_load(&wa_counting) || n == 0) {
        return;
    }

    pthread_mutex_lock(&wa_counters_lock);

    for (i = 0; i < wa_nseries; i++) {
        s = &wa_series[i];

        if (s->f == f && strncmp(s->v1, v1 ? v1 : "", WA_LABEL_MAX - 1) == 0
            && strncmp(s->v2, v2 ? v2 : "", WA_LABEL_MAX - 1) == 0)
        {
            s->n += n;
            pthread_mutex_unlock(&wa_counters_lock);
            return;
        }
    }

    /* a table full of series is a label gone wild: the rest is "other" */
    if (wa_nseries == WA_SERIES_MAX) {
        v1 = "other";
        v2 = "other";
        i = WA_SERIES_MAX - 1;

    } else {
        i = wa_nseries++;
        wa_series[i].n = 0;
    }

    s = &wa_series[i];
    s->f = f;
    wa_copy_label(s->v1, v1);
    wa_copy_label(s->v2, v2);
    s->n += n;

    pthread_mutex_unlock(&wa_counters_lock);
}


void
wa_counters_observe(wa_hist_e h, long long us)
{
    int  i;

    if (!atomic_load(&wa_counting)) {
        return;
    }

    us = us < 0 ? 0 : us;

    pthread_mutex_lock(&wa_counters_lock);

    for (i = 0; i < WA_BUCKETS; i++) {
        if (us <= wa_bucket_us[i]) {
            wa_hist[h].bucket[i]++;
            break;
        }
    }

    wa_hist[h].count++;
    wa_hist[h].sum += us;

    pthread_mutex_unlock(&wa_counters_lock);
}


void
wa_counters_reason(const char *why, char *buf, size_t size)
{
    size_t  n;

    n = strcspn(why ? why : "", " :,(");
    snprintf(buf, size, "%.*s", (int) n, why ? why : "");
}


/* what the threads counted: a copy under the lock, written without it */
void
wa_counters_render(wa_text_t *t)
{
    int           f, i, n, k;
    char          e1[2 * WA_LABEL_MAX], e2[2 * WA_LABEL_MAX];
    long long     c;
    wa_hist_t     hist[WA_HIST_N];
    wa_series_t  *series;

    series = malloc(sizeof(wa_series));
    if (series == NULL) {
        return;
    }

    pthread_mutex_lock(&wa_counters_lock);
    n = wa_nseries;
    memcpy(series, wa_series, n * sizeof(wa_series_t));
    memcpy(hist, wa_hist, sizeof(hist));
    pthread_mutex_unlock(&wa_counters_lock);

    for (f = 0; f < WA_FAM_N; f++) {
        wa_printf(t, "# HELP %s %s\n# TYPE %s counter\n", wa_families[f].name,
                  wa_families[f].help, wa_families[f].name);

        for (i = 0; i < n; i++) {
            if (series[i].f != (wa_family_e) f) {
                continue;
            }

            wa_printf(t, "%s{%s=\"%s\"", wa_families[f].name,
                      wa_families[f].l1,
                      wa_escape(series[i].v1, e1, sizeof(e1)));

            if (wa_families[f].l2) {
                wa_printf(t, ",%s=\"%s\"", wa_families[f].l2,
                          wa_escape(series[i].v2, e2, sizeof(e2)));
            }

            wa_printf(t, "} %lld\n", series[i].n);
        }
    }

    for (i = 0; i < WA_HIST_N; i++) {
        wa_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", wa_hists[i].name,
                  wa_hists[i].help, wa_hists[i].name);

        for (k = 0, c = 0; k < WA_BUCKETS; k++) {
            c += hist[i].bucket[k];
            wa_printf(t, "%s_bucket{le=\"%g\"} %lld\n", wa_hists[i].name,
                      wa_bucket_us[k] / 1e6, c);
        }

        wa_printf(t, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n"
                  "%s_count %lld\n", wa_hists[i].name, hist[i].count,
                  wa_hists[i].name, hist[i].sum / 1e6, wa_hists[i].name,
                  hist[i].count);
    }

    free(series);
}


