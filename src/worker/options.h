/*
 * wa-relayd: configuration from the command line and the environment.
 */

#ifndef WA_OPTIONS_H
#define WA_OPTIONS_H

#include "wa_keyword.h"

/* business hours, local: [from, to) */
typedef struct {
    long            from;
    long            to;
} wa_hours_t;

typedef struct {
    const char     *redis;              /* host:port or unix:/path */
    const char     *sentinel;           /* host:port,... or NULL */
    const char     *master;             /* the name the sentinels know */
    const char     *cluster;            /* host:port,... of a Cluster */
    long            partitions;

    const char     *user;               /* ACL user, or NULL: default */
    const char     *password_file;
    char           *password;
    long            db;
    const char     *prefix;
    const char     *group;
    char            consumer[256];
    long            batch;
    long            block_ms;
    long            timeout_ms;
    long            claim_idle_ms;
    long            max_deliveries;
    long            seen_ttl;
    long            trim_interval_ms;
    long            max_len;
    long            stats_interval_ms;
    const char     *log_file;
    const char     *log_level;
    wa_keywords_t   optout;
    wa_keywords_t   optin;

    /* automatic replies */
    const char     *optout_reply;
    const char     *optin_reply;
    const char     *away_reply;
    wa_hours_t      hours;
    const char     *business_days;
    long            utc_offset;
    long            mark_read;

    /* the sender */
    const char     *token_file;
    char           *token;
    const char     *graph_url;
    const char     *graph_version;
    long            rate;
    long            pair_interval_ms;
    long            pair_burst;
    long            max_inflight;
    long            request_timeout_ms;
    long            retry_base_ms;
    long            max_attempts;
    long            window_margin;
    const char     *messaging_limit;    /* "portfolio" or "number" */
    const char     *portfolio;          /* ID=WABA,...;ID=... or NULL */
    char           *portfolio_owned;    /* --portfolio repeated, joined */
    long            tier_recheck_ms;

    const char     *metrics;            /* ADDR:PORT, or NULL: off */

    /* the media fetcher */
    const char     *media_dir;
    long            media_max_bytes;
    long            media_concurrency;
    long            media_attempts;
} wa_options_t;

/*
 * 0, or -1 after printing why; exits 0 for --help (and --help-markdown,
 * the table of docs/worker.md)
 */
int wa_options_parse(wa_options_t *o, int argc, char **argv);
void wa_options_free(wa_options_t *o);

#endif /* WA_OPTIONS_H */
