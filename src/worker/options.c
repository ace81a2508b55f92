/*
 * wa-relayd: every option is a flag, and an environment variable that the
 * flag overrides (for systemd units and containers).
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"

#define DEFAULT_OPTOUT  "STOP,PARAR,SAIR,CANCELAR,BAJA,UNSUBSCRIBE,STOPALL," \
                        "END,QUIT,DESCADASTRAR,ARRET,ABMELDEN"
#define DEFAULT_OPTIN   "START,VOLTAR,ALTA,UNSTOP,SUBSCRIBE,RESUME," \
                        "ASSINAR,REANUDAR"

typedef struct {
    const char  *name;          /* the flag, without "--" */
    const char  *env;
    const char  *def;
    const char  *help;
} option_doc_t;

static const option_doc_t  docs[] = {
    { "redis", "WA_REDIS", "127.0.0.1:6379",
      "Redis address, host:port or unix:/path" },
    { "redis-password-file", "WA_REDIS_PASSWORD_FILE", NULL,
      "file holding the Redis password (not world-readable)" },
    { "redis-db", "WA_REDIS_DB", "0", "Redis database number" },
    { "prefix", "WA_PREFIX", "wa", "stream and key prefix" },
    { "group", "WA_GROUP", "wa-relayd", "consumer group name" },
    { "consumer", "WA_CONSUMER", "the host name",
      "consumer name; stable across restarts, unique per worker" },
    { "batch", "WA_BATCH", "256", "entries read and applied at a time" },
    { "block-ms", "WA_BLOCK_MS", "1000", "XREADGROUP BLOCK, milliseconds" },
    { "timeout-ms", "WA_TIMEOUT_MS", "5000",
      "Redis connect and reply timeout, milliseconds" },
    { "claim-idle-ms", "WA_CLAIM_IDLE_MS", "60000",
      "reclaim entries pending that long (a crashed worker's)" },
    { "max-deliveries", "WA_MAX_DELIVERIES", "5",
      "deliveries before an entry goes to <prefix>:dead" },
    { "seen-ttl", "WA_SEEN_TTL", "604800",
      "seconds an applied event_id is remembered (idempotence)" },
    { "trim-interval-ms", "WA_TRIM_INTERVAL_MS", "10000",
      "how often streams are trimmed to the groups' progress" },
    { "max-len", "WA_MAX_LEN", "2000000",
      "hard cap on stream length, counted and logged; 0: none" },
    { "stats-interval-ms", "WA_STATS_INTERVAL_MS", "10000",
      "how often counters are logged and written to Redis" },
    { "optout-keywords", "WA_OPTOUT_KEYWORDS", DEFAULT_OPTOUT,
      "comma-separated opt-out keywords" },
    { "optin-keywords", "WA_OPTIN_KEYWORDS", DEFAULT_OPTIN,
      "comma-separated opt-in keywords" },
    { "log-file", "WA_LOG_FILE", "stderr", "log file, reopened on SIGHUP" },
    { "log-level", "WA_LOG_LEVEL", "info", "debug, info, warn or error" },
    { "optout-reply", "WA_OPTOUT_REPLY", NULL,
      "automatic reply to an opt-out keyword (none if unset)" },
    { "optin-reply", "WA_OPTIN_REPLY", NULL,
      "automatic reply to an opt-in keyword (none if unset)" },
    { "away-reply", "WA_AWAY_REPLY", NULL,
      "automatic reply outside business hours, once per window" },
    { "business-hours", "WA_BUSINESS_HOURS", "9-18",
      "business hours, local: from-to (hours)" },
    { "business-days", "WA_BUSINESS_DAYS", "12345",
      "business days, local: 1 Monday .. 7 Sunday" },
    { "utc-offset", "WA_UTC_OFFSET", "0",
      "minutes from UTC of the business's local time" },
    { "mark-read", "WA_MARK_READ", "0", "1: mark inbound messages read" },
    { "token-file", "WA_TOKEN_FILE", NULL,
      "Graph API access token file; sending is on when set" },
    { "graph-url", "WA_GRAPH_URL", "https://graph.facebook.com",
      "Graph API base URL" },
    { "graph-version", "WA_GRAPH_VERSION", "v21.0", "Graph API version" },
    { "rate", "WA_RATE", "80",
      "messages per second per business number (up to 1000)" },
    { "pair-interval-ms", "WA_PAIR_INTERVAL_MS", "6000",
      "pair limit: one message per this per recipient" },
    { "pair-burst", "WA_PAIR_BURST", "3",
      "pair limit: messages a recipient may get at once" },
    { "max-inflight", "WA_MAX_INFLIGHT", "64",
      "Graph API requests in flight at once" },
    { "request-timeout-ms", "WA_REQUEST_TIMEOUT_MS", "15000",
      "timeout of one Graph API request" },
    { "retry-base-ms", "WA_RETRY_BASE_MS", "1000",
      "first retry delay; doubles (4x for the pair limit)" },
    { "max-attempts", "WA_MAX_ATTEMPTS", "8",
      "attempts before a retryable failure is given up" },
    { "window-margin", "WA_WINDOW_MARGIN", "300",
      "seconds before the 24 h window's end treated as closed" },
    { "help", NULL, NULL, "this text" },
    { NULL, NULL, NULL, NULL }
};


static void
usage(FILE *fp)
{
    const option_doc_t  *d;

    fprintf(fp, "usage: wa-relayd [options]\n\n"
            "Reads <prefix>:messages, :statuses and :account in a consumer "
            "group and keeps\nWhatsApp's session, quality and consent state "
            "in Redis (docs/state.md).\n\n");

    for (d = docs; d->name; d++) {
        fprintf(fp, "  --%-22s %s\n", d->name, d->help);

        if (d->env) {
            fprintf(fp, "  %-24s env %s%s%s%s\n", "", d->env,
                    d->def ? ", default " : "", d->def ? d->def : "", "");
        }
    }
}


/* the value of an option: the flag's, else the environment's, else none */
static const char *
value(const char *flag, const char *name)
{
    const option_doc_t  *d;

    if (flag) {
        return flag;
    }

    for (d = docs; d->name; d++) {
        if (strcmp(d->name, name) == 0 && d->env) {
            return getenv(d->env);
        }
    }

    return NULL;
}


static int
number(const char *name, const char *v, long min, long *out)
{
    char  *end;
    long   n;

    if (v == NULL) {
        return 0;
    }

    errno = 0;
    n = strtol(v, &end, 10);

    if (errno || *v == '\0' || *end != '\0' || n < min) {
        fprintf(stderr, "wa-relayd: --%s: \"%s\" is not a number >= %ld\n",
                name, v, min);
        return -1;
    }

    *out = n;

    return 0;
}


static char *
read_secret(const char *path)
{
    FILE        *fp;
    char         buf[1024];
    size_t       n;
    struct stat  st;

    fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "wa-relayd: %s: %s\n", path, strerror(errno));
        return NULL;
    }

    if (fstat(fileno(fp), &st) == 0 && (st.st_mode & S_IROTH)) {
        fprintf(stderr, "wa-relayd: %s is world-readable\n", path);
        fclose(fp);
        return NULL;
    }

    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                 || buf[n - 1] == ' '))
    {
        n--;
    }

    if (n == 0) {
        fprintf(stderr, "wa-relayd: %s is empty\n", path);
        return NULL;
    }

    buf[n] = '\0';

    /* it goes into a header or a command: no control characters */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char) buf[i] < 0x20 || buf[i] == 0x7f) {
            fprintf(stderr, "wa-relayd: %s holds a control character\n",
                    path);
            return NULL;
        }
    }

    return strdup(buf);
}


int
options_parse(options_t *o, int argc, char **argv)
{
    int          c, i;
    long         db;
    const char  *flag[sizeof(docs) / sizeof(docs[0])];
    const char  *v;

    struct option  longopts[sizeof(docs) / sizeof(docs[0])];

    memset(o, 0, sizeof(*o));
    memset(flag, 0, sizeof(flag));

    for (i = 0; docs[i].name; i++) {
        longopts[i].name = docs[i].name;
        longopts[i].has_arg = strcmp(docs[i].name, "help") == 0
                              ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 1000 + i;
    }

    memset(&longopts[i], 0, sizeof(longopts[i]));

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h' || (c >= 1000 && strcmp(docs[c - 1000].name, "help")
                                      == 0))
        {
            usage(stdout);
            exit(0);
        }

        if (c < 1000) {
            usage(stderr);
            return -1;
        }

        flag[c - 1000] = optarg;
    }

    if (optind < argc) {
        fprintf(stderr, "wa-relayd: unexpected argument \"%s\"\n",
                argv[optind]);
        return -1;
    }


    for (i = 0; docs[i].name; i++) {
        v = value(flag[i], docs[i].name);

        if (v == NULL && docs[i].def
            && strcmp(docs[i].name, "consumer") != 0
            && strcmp(docs[i].name, "log-file") != 0)
        {
            v = docs[i].def;
        }

        flag[i] = v;
    }


    /* flag[] is in the order of docs[] */
    i = 0;
    o->redis = flag[i++];
    o->password_file = flag[i++];
    db = 0;

    if (number("redis-db", flag[i++], 0, &db) != 0) {
        return -1;
    }

    o->db = (int) db;
    o->prefix = flag[i++];
    o->group = flag[i++];

    if (flag[i]) {
        snprintf(o->consumer, sizeof(o->consumer), "%s", flag[i]);

    } else if (gethostname(o->consumer, sizeof(o->consumer) - 1) != 0) {
        snprintf(o->consumer, sizeof(o->consumer), "wa-relayd");
    }

    i++;

    if (number("batch", flag[i++], 1, &o->batch) != 0
        || number("block-ms", flag[i++], 1, &o->block_ms) != 0
        || number("timeout-ms", flag[i++], 1, &o->timeout_ms) != 0
        || number("claim-idle-ms", flag[i++], 1, &o->claim_idle_ms) != 0
        || number("max-deliveries", flag[i++], 1, &o->max_deliveries) != 0
        || number("seen-ttl", flag[i++], 0, &o->seen_ttl) != 0
        || number("trim-interval-ms", flag[i++], 1, &o->trim_interval_ms)
           != 0
        || number("max-len", flag[i++], 0, &o->max_len) != 0
        || number("stats-interval-ms", flag[i++], 1, &o->stats_interval_ms)
           != 0)
    {
        return -1;
    }

    if (o->timeout_ms <= o->block_ms) {
        fprintf(stderr, "wa-relayd: --timeout-ms must exceed --block-ms\n");
        return -1;
    }

    if (wa_keywords_parse(&o->optout, flag[i++]) != 0
        || wa_keywords_parse(&o->optin, flag[i++]) != 0)
    {
        fprintf(stderr, "wa-relayd: a keyword is longer than %d bytes\n",
                WA_KEYWORD_MAX);
        return -1;
    }

    o->log_file = flag[i++];
    o->log_level = flag[i++];
    o->optout_reply = flag[i++];
    o->optin_reply = flag[i++];
    o->away_reply = flag[i++];

    if (sscanf(flag[i++], "%ld-%ld", &o->hours_from, &o->hours_to) != 2
        || o->hours_from < 0 || o->hours_to > 24
        || o->hours_from >= o->hours_to)
    {
        fprintf(stderr, "wa-relayd: --business-hours: from-to, "
                "0 <= from < to <= 24\n");
        return -1;
    }

    o->business_days = flag[i++];

    if (number("utc-offset", flag[i++], -840, &o->utc_offset) != 0
        || number("mark-read", flag[i++], 0, &o->mark_read) != 0)
    {
        return -1;
    }

    o->token_file = flag[i++];
    o->graph_url = flag[i++];
    o->graph_version = flag[i++];

    if (number("rate", flag[i++], 1, &o->rate) != 0
        || number("pair-interval-ms", flag[i++], 0, &o->pair_interval_ms)
           != 0
        || number("pair-burst", flag[i++], 1, &o->pair_burst) != 0
        || number("max-inflight", flag[i++], 1, &o->max_inflight) != 0
        || number("request-timeout-ms", flag[i++], 1,
                  &o->request_timeout_ms) != 0
        || number("retry-base-ms", flag[i++], 1, &o->retry_base_ms) != 0
        || number("max-attempts", flag[i++], 1, &o->max_attempts) != 0
        || number("window-margin", flag[i++], 0, &o->window_margin) != 0)
    {
        return -1;
    }

    if (o->rate > 1000) {
        fprintf(stderr, "wa-relayd: --rate: at most 1000 (Meta's highest)\n");
        return -1;
    }

    if (o->token_file) {
        o->token = read_secret(o->token_file);
        if (o->token == NULL) {
            return -1;
        }
    }

    if (o->password_file) {
        o->password = read_secret(o->password_file);
        if (o->password == NULL) {
            return -1;
        }
    }

    return 0;
}


void
options_free(options_t *o)
{
    if (o->password) {
        memset(o->password, 0, strlen(o->password));
        free(o->password);
    }

    if (o->token) {
        memset(o->token, 0, strlen(o->token));
        free(o->token);
    }

    wa_keywords_free(&o->optout);
    wa_keywords_free(&o->optin);
}
