/*
 * wa-relayd: configuration from the command line and the environment.
 */

#ifndef WA_OPTIONS_H
#define WA_OPTIONS_H

#include "wa_keyword.h"

typedef struct {
    const char     *redis;              /* host:port or unix:/path */
    const char     *password_file;
    char           *password;
    int             db;
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
} options_t;

/* 0, or -1 after printing why; exits 0 for --help */
int options_parse(options_t *o, int argc, char **argv);
void options_free(options_t *o);

#endif /* WA_OPTIONS_H */
