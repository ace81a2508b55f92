/*
 * wa-relayd: every option is a flag, and an environment variable that the
 * flag overrides (for systemd units and containers).
 *
 * One table says everything of an option: its flag, its variable, its
 * default, where its value goes in wa_options_t and how it is read.  --help,
 * the environment, docs/worker.md (--help-markdown) and the OPTIONS of the
 * wa-relayd(8) man page (--help-man) all come from it: adding an option is
 * adding a row.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"
#include "part.h"
#include "portfolio.h"

#define DEFAULT_OPTOUT  "STOP,PARAR,SAIR,CANCELAR,BAJA,UNSUBSCRIBE,STOPALL," \
                        "END,QUIT,DESCADASTRAR,ARRET,ABMELDEN"
#define DEFAULT_OPTIN   "START,VOLTAR,ALTA,UNSTOP,SUBSCRIBE,RESUME," \
                        "ASSINAR,REANUDAR"

typedef struct wa_option_s  wa_option_t;

/* reads v (NULL: unset and no default) into the field; 0 or -1 */
typedef int (*wa_option_parse_pt)(const wa_option_t *opt, const char *v,
    void *field);

struct wa_option_s {
    const char          *name;          /* the flag, without "--" */
    const char          *env;
    const char          *def;           /* NULL: none */
    size_t               offset;        /* in wa_options_t */
    wa_option_parse_pt   parse;
    long                 min;           /* numbers */
    long                 max;
    const char          *help;
};

static int opt_string(const wa_option_t *opt, const char *v, void *field);
static int opt_number(const wa_option_t *opt, const char *v, void *field);
static int opt_consumer(const wa_option_t *opt, const char *v, void *field);
static int opt_keywords(const wa_option_t *opt, const char *v, void *field);
static int opt_hours(const wa_option_t *opt, const char *v, void *field);

#define OFF(f)  offsetof(wa_options_t, f)
#define STR(f)  OFF(f), opt_string, 0, 0
#define NUM(f, min, max)  OFF(f), opt_number, min, max

static const wa_option_t  wa_options[] = {
    { "redis", "WA_REDIS", "127.0.0.1:6379", STR(redis),
      "Redis address, host:port or unix:/path" },
    { "sentinel", "WA_SENTINEL", NULL, STR(sentinel),
      "sentinels to ask for the primary, host:port,host:port (then --redis "
      "is not used); asked again whenever the link breaks" },
    { "master", "WA_MASTER", NULL, STR(master),
      "the name the sentinels know the primary by (with --sentinel)" },
    { "cluster", "WA_CLUSTER", NULL, STR(cluster),
      "nodes of a Redis Cluster to ask for its slot map, host:port,... "
      "(then --redis is not used); each partition's link goes to the "
      "primary serving its slot, and asks again on MOVED" },
    { "partitions", "WA_PARTITIONS", "1", NUM(partitions, 1, 1024),
      "partitions of the key layout, as whatsapp_partitions (docs/redis.md); "
      "each is read by a thread of its own" },
    { "redis-user", "WA_REDIS_USER", NULL, STR(user),
      "Redis ACL user (needs --redis-password-file); docs/redis.md lists "
      "its permissions" },
    { "redis-password-file", "WA_REDIS_PASSWORD_FILE", NULL,
      STR(password_file),
      "file holding the Redis password (not world-readable)" },
    { "redis-db", "WA_REDIS_DB", "0", NUM(db, 0, 65535),
      "Redis database number" },
    { "prefix", "WA_PREFIX", "wa", STR(prefix),
      "stream and key prefix, up to 160 bytes" },
    { "group", "WA_GROUP", "wa-relayd", STR(group), "consumer group name" },
    { "consumer", "WA_CONSUMER", NULL, OFF(consumer), opt_consumer, 0, 0,
      "consumer name (default: the host name); stable across restarts, "
      "unique per worker" },
    { "batch", "WA_BATCH", "256", NUM(batch, 1, 100000),
      "entries read and applied at a time" },
    { "block-ms", "WA_BLOCK_MS", "1000", NUM(block_ms, 1, 3600000),
      "XREADGROUP BLOCK, milliseconds" },
    { "timeout-ms", "WA_TIMEOUT_MS", "5000", NUM(timeout_ms, 1, 3600000),
      "Redis connect and reply timeout, milliseconds" },
    { "claim-idle-ms", "WA_CLAIM_IDLE_MS", "60000",
      NUM(claim_idle_ms, 1, 86400000),
      "reclaim entries pending that long (a crashed worker's)" },
    { "max-deliveries", "WA_MAX_DELIVERIES", "5",
      NUM(max_deliveries, 1, 1000000),
      "deliveries before an entry goes to <prefix>:dead" },
    { "seen-ttl", "WA_SEEN_TTL", "604800", NUM(seen_ttl, 0, 315360000),
      "seconds an applied event_id is remembered (idempotence)" },
    { "trim-interval-ms", "WA_TRIM_INTERVAL_MS", "10000",
      NUM(trim_interval_ms, 1, 86400000),
      "how often streams are trimmed to the groups' progress" },
    { "max-len", "WA_MAX_LEN", "2000000", NUM(max_len, 0, LONG_MAX),
      "hard cap on stream length, counted and logged; 0: none" },
    { "stats-interval-ms", "WA_STATS_INTERVAL_MS", "10000",
      NUM(stats_interval_ms, 1, 86400000),
      "how often counters are logged and written to Redis" },
    { "optout-keywords", "WA_OPTOUT_KEYWORDS", DEFAULT_OPTOUT,
      OFF(optout), opt_keywords, 0, 0, "comma-separated opt-out keywords" },
    { "optin-keywords", "WA_OPTIN_KEYWORDS", DEFAULT_OPTIN,
      OFF(optin), opt_keywords, 0, 0, "comma-separated opt-in keywords" },
    { "log-file", "WA_LOG_FILE", NULL, STR(log_file),
      "log file (default: stderr), reopened on SIGHUP" },
    { "log-level", "WA_LOG_LEVEL", "info", STR(log_level),
      "debug, info, warn or error" },
    { "optout-reply", "WA_OPTOUT_REPLY", NULL, STR(optout_reply),
      "automatic reply to an opt-out keyword (none if unset)" },
    { "optin-reply", "WA_OPTIN_REPLY", NULL, STR(optin_reply),
      "automatic reply to an opt-in keyword (none if unset)" },
    { "away-reply", "WA_AWAY_REPLY", NULL, STR(away_reply),
      "automatic reply outside business hours, once per window" },
    { "business-hours", "WA_BUSINESS_HOURS", "9-18", OFF(hours), opt_hours,
      0, 24, "business hours, local: from-to (hours)" },
    { "business-days", "WA_BUSINESS_DAYS", "12345", STR(business_days),
      "business days, local: 1 Monday .. 7 Sunday" },
    { "utc-offset", "WA_UTC_OFFSET", "0", NUM(utc_offset, -840, 840),
      "minutes from UTC of the business's local time" },
    { "mark-read", "WA_MARK_READ", "0", NUM(mark_read, 0, 1),
      "1: mark inbound messages read" },
    { "token-file", "WA_TOKEN_FILE", NULL, STR(token_file),
      "Graph API access token file; sending is on when set" },
    { "graph-url", "WA_GRAPH_URL", "https://graph.facebook.com",
      STR(graph_url), "Graph API base URL" },
    { "graph-version", "WA_GRAPH_VERSION", "v21.0", STR(graph_version),
      "Graph API version" },
    { "rate", "WA_RATE", "80", NUM(rate, 1, 1000),
      "messages per second per business number (up to 1000, Meta's "
      "highest)" },
    { "pair-interval-ms", "WA_PAIR_INTERVAL_MS", "6000",
      NUM(pair_interval_ms, 0, 86400000),
      "pair limit: one message per this per recipient" },
    { "pair-burst", "WA_PAIR_BURST", "3", NUM(pair_burst, 1, 1000),
      "pair limit: messages a recipient may get at once" },
    { "max-inflight", "WA_MAX_INFLIGHT", "64", NUM(max_inflight, 1, 10000),
      "Graph API requests in flight at once" },
    { "request-timeout-ms", "WA_REQUEST_TIMEOUT_MS", "15000",
      NUM(request_timeout_ms, 1, 3600000),
      "timeout of one Graph API request" },
    { "retry-base-ms", "WA_RETRY_BASE_MS", "1000",
      NUM(retry_base_ms, 1, 3600000),
      "first retry delay; doubles (4x for the pair limit)" },
    { "max-attempts", "WA_MAX_ATTEMPTS", "8", NUM(max_attempts, 1, 1000),
      "attempts before a retryable failure is given up" },
    { "messaging-limit", "WA_MESSAGING_LIMIT", "portfolio",
      STR(messaging_limit),
      "portfolio: Meta's messaging limit since 2025-10-07, one per business "
      "portfolio, shared by its numbers; number: each number's own, as "
      "before (docs/outbox.md)" },
    { "portfolio", "WA_PORTFOLIO", NULL, STR(portfolio),
      "ID=WABA[,WABA...]: WABAs of one business portfolio, sharing its "
      "messaging limit (else each WABA is its own); repeatable, ';' "
      "between portfolios in the variable; kept in Redis for every worker" },
    { "tier-recheck-ms", "WA_TIER_RECHECK_MS", "300000",
      NUM(tier_recheck_ms, 1000, 86400000),
      "an entry deferred by the messaging limit is asked about again after "
      "this at most: a raised limit sends it then" },
    { "window-margin", "WA_WINDOW_MARGIN", "300",
      NUM(window_margin, 0, 86400),
      "seconds before the 24 h window's end treated as closed" },
    { "metrics", "WA_METRICS", NULL, STR(metrics),
      "serve /metrics, /healthz and the dashboard at / on ADDR:PORT "
      "(docs/metrics.md)" },
    { "media-dir", "WA_MEDIA_DIR", NULL, STR(media_dir),
      "fetch the media of messages into this directory (needs "
      "--token-file; docs/media.md)" },
    { "media-max-bytes", "WA_MEDIA_MAX_BYTES", "104857600",
      NUM(media_max_bytes, 1, LONG_MAX),
      "a larger media file is not fetched: in <prefix>:dead" },
    { "media-concurrency", "WA_MEDIA_CONCURRENCY", "4",
      NUM(media_concurrency, 1, 1000),
      "media files fetched at once, per partition" },
    { "media-attempts", "WA_MEDIA_ATTEMPTS", "5",
      NUM(media_attempts, 1, 1000),
      "attempts at a media file before it is given up" },
    { NULL, NULL, NULL, 0, NULL, 0, 0, NULL }
};

#define WA_NOPTIONS  (sizeof(wa_options) / sizeof(wa_options[0]) - 1)
#define WA_CONSUMER_SIZE  sizeof(((wa_options_t *) 0)->consumer)
#define WA_OPT_HELP           'h'
#define WA_OPT_HELP_MARKDOWN  'm'
#define WA_OPT_HELP_MAN       'r'
#define WA_OPT_TABLE          1000      /* getopt's value for row 0 */


static void
usage(FILE *fp)
{
    const wa_option_t  *opt;

    fprintf(fp, "usage: wa-relayd [options]\n\n"
            "Reads <prefix>:messages, :statuses and :account in a consumer "
            "group and keeps\nWhatsApp's session, quality and consent state "
            "in Redis (docs/state.md).\n\n");

    for (opt = wa_options; opt->name; opt++) {
        fprintf(fp, "  --%-22s %s\n", opt->name, opt->help);
        fprintf(fp, "  %-24s env %s%s%s\n", "", opt->env,
                opt->def ? ", default " : "", opt->def ? opt->def : "");
    }

    fprintf(fp, "  --%-22s %s\n  --%-22s %s\n  --%-22s %s\n", "help",
            "this text", "help-markdown",
            "the options as docs/worker.md shows them", "help-man",
            "the options as the man page shows them (roff)");
}


/* the table of docs/worker.md */
static void
usage_markdown(FILE *fp)
{
    const wa_option_t  *opt;

    fprintf(fp, "| option | environment | default | meaning |\n"
            "|---|---|---|---|\n");

    for (opt = wa_options; opt->name; opt++) {
        fprintf(fp, "| `--%s` | `%s` | %s%s%s | %s |\n", opt->name, opt->env,
                opt->def ? "`" : "", opt->def ? opt->def : "",
                opt->def ? "`" : "", opt->help);
    }
}


static int
opt_string(const wa_option_t *opt, const char *v, void *field)
{
    (void) opt;

    *(const char **) field = v;

    return 0;
}


static int
opt_number(const wa_option_t *opt, const char *v, void *field)
{
    char  *end;
    long   n;

    if (v == NULL) {
        return 0;
    }

    errno = 0;
    n = strtol(v, &end, 10);

    if (errno || *v == '\0' || *end != '\0' || n < opt->min || n > opt->max)
    {
        fprintf(stderr, "wa-relayd: --%s: \"%s\" is not a number from %ld "
                "to %ld\n", opt->name, v, opt->min, opt->max);
        return -1;
    }

    *(long *) field = n;

    return 0;
}


static int
opt_consumer(const wa_option_t *opt, const char *v, void *field)
{
    char  *consumer = field;

    (void) opt;

    if (v != NULL) {
        snprintf(consumer, WA_CONSUMER_SIZE, "%s", v);

    } else if (gethostname(consumer, WA_CONSUMER_SIZE - 1) != 0) {
        snprintf(consumer, WA_CONSUMER_SIZE, "wa-relayd");
    }

    return 0;
}


static int
opt_keywords(const wa_option_t *opt, const char *v, void *field)
{
    if (wa_keywords_parse(field, v) != 0) {
        fprintf(stderr, "wa-relayd: --%s: a keyword is longer than %d "
                "bytes\n", opt->name, WA_KEYWORD_MAX);
        return -1;
    }

    return 0;
}


static int
opt_hours(const wa_option_t *opt, const char *v, void *field)
{
    char         end;
    wa_hours_t  *h = field;

    if (sscanf(v, "%ld-%ld%c", &h->from, &h->to, &end) != 2
        || h->from < opt->min || h->to > opt->max || h->from >= h->to)
    {
        fprintf(stderr, "wa-relayd: --%s: from-to, %ld <= from < to <= %ld"
                "\n", opt->name, opt->min, opt->max);
        return -1;
    }

    return 0;
}


static char *
read_secret(const char *path)
{
    FILE        *fp;
    char         buf[1024];
    size_t       i, n;
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
    for (i = 0; i < n; i++) {
        if ((unsigned char) buf[i] < 0x20 || buf[i] == 0x7f) {
            fprintf(stderr, "wa-relayd: %s holds a control character\n",
                    path);
            return NULL;
        }
    }

    return strdup(buf);
}


/*
 * text for roff: hyphens that are minus signs, backslashes, no request, and
 * a place to break a line after each comma (the keyword lists are long)
 */
static void
roff_puts(FILE *fp, const char *s)
{
    if (*s == '.' || *s == '\'') {
        fputs("\\&", fp);
    }

    for ( /* void */ ; *s; s++) {
        switch (*s) {
        case '-':
            fputs("\\-", fp);
            break;
        case '\\':
            fputs("\\e", fp);
            break;
        case ',':
            fputs(",\\:", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}


/* the OPTIONS section of wa-relayd(8); docs/wa-relayd.8.in holds the rest */
static void
usage_man(FILE *fp)
{
    const wa_option_t  *opt;

    /* left-aligned, unhyphenated: defaults are long words of commas */
    fprintf(fp, ".SH OPTIONS\n.ad l\n.nh\n");

    for (opt = wa_options; opt->name; opt++) {
        fprintf(fp, ".TP\n.BI \"\\-\\-");
        roff_puts(fp, opt->name);
        fprintf(fp, " \" value\n");
        roff_puts(fp, opt->help);
        fprintf(fp, ".\n.br\nEnvironment: \\fB");
        roff_puts(fp, opt->env);
        fprintf(fp, "\\fR");

        if (opt->def) {
            fprintf(fp, "; default: \\fB");
            roff_puts(fp, opt->def);
            fprintf(fp, "\\fR");
        }

        fprintf(fp, ".\n");
    }

    fprintf(fp, ".TP\n.B \\-\\-help\nThe options, briefly.\n"
            ".TP\n.B \\-\\-help\\-markdown\n"
            "The options as a Markdown table.\n"
            ".TP\n.B \\-\\-help\\-man\n"
            "This section of the manual, in roff.\n.ad\n.hy\n");
}


/*
 * the flags given, by row of the table; 1 when the caller should exit 0.
 * *owned: what a repeated flag's values were joined into, for the caller
 * to free
 */
static int
options_flags(int argc, char **argv, const char **flag, char **owned)
{
    int            c;
    char          *prev;
    size_t         i, len;
    struct option  longopts[WA_NOPTIONS + 4];

    for (i = 0; i < WA_NOPTIONS; i++) {
        longopts[i].name = wa_options[i].name;
        longopts[i].has_arg = required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = WA_OPT_TABLE + (int) i;
    }

    longopts[i++] = (struct option) { "help", no_argument, NULL,
                                      WA_OPT_HELP };
    longopts[i++] = (struct option) { "help-markdown", no_argument, NULL,
                                      WA_OPT_HELP_MARKDOWN };
    longopts[i++] = (struct option) { "help-man", no_argument, NULL,
                                      WA_OPT_HELP_MAN };
    memset(&longopts[i], 0, sizeof(longopts[i]));

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == WA_OPT_HELP || c == WA_OPT_HELP_MARKDOWN
            || c == WA_OPT_HELP_MAN)
        {
            (c == WA_OPT_HELP ? usage
             : c == WA_OPT_HELP_MAN ? usage_man : usage_markdown)(stdout);
            return 1;
        }

        if (c < WA_OPT_TABLE) {
            usage(stderr);
            return -1;
        }

        i = (size_t) (c - WA_OPT_TABLE);

        /* --portfolio, repeated: one value, ';' between them (*owned) */
        if (flag[i] && wa_options[i].offset == OFF(portfolio)) {
            prev = *owned;
            len = strlen(flag[i]) + strlen(optarg) + 2;

            *owned = malloc(len);
            if (*owned == NULL) {
                *owned = prev;
                return -1;
            }

            snprintf(*owned, len, "%s;%s", flag[i], optarg);
            free(prev);
            flag[i] = *owned;
            continue;
        }

        flag[i] = optarg;
    }

    if (optind < argc) {
        fprintf(stderr, "wa-relayd: unexpected argument \"%s\"\n",
                argv[optind]);
        return -1;
    }

    return 0;
}


/* options that contradict each other, or a value out of its range */
static int
options_check(const wa_options_t *o)
{
    if (strcmp(o->messaging_limit, "portfolio") != 0
        && strcmp(o->messaging_limit, "number") != 0)
    {
        fprintf(stderr, "wa-relayd: --messaging-limit: \"%s\" is neither "
                "portfolio nor number\n", o->messaging_limit);
        return -1;
    }

    if (o->portfolio && wa_portfolios_parse(o->portfolio, NULL, NULL) != 0)
    {
        return -1;
    }

    if (o->timeout_ms <= o->block_ms) {
        fprintf(stderr, "wa-relayd: --timeout-ms must exceed --block-ms\n");
        return -1;
    }

    if (o->media_dir && o->token_file == NULL) {
        fprintf(stderr, "wa-relayd: --media-dir needs --token-file: Meta "
                "gives media to the token's holder only\n");
        return -1;
    }

    if (o->cluster && o->partitions < 2) {
        fprintf(stderr, "wa-relayd: --cluster needs --partitions of 2 or "
                "more: the keys of one partition share a hash slot, those "
                "of the single-instance layout do not\n");
        return -1;
    }

    if (o->cluster && (o->sentinel || o->db)) {
        fprintf(stderr, "wa-relayd: --cluster uses database 0 and no "
                "sentinels: a Redis Cluster has neither\n");
        return -1;
    }

    if (strlen(o->prefix) > WA_PREFIX_ROOT) {
        fprintf(stderr, "wa-relayd: --prefix is longer than %d bytes\n",
                WA_PREFIX_ROOT);
        return -1;
    }

    if (o->sentinel && o->master == NULL) {
        fprintf(stderr, "wa-relayd: --sentinel needs --master, the name the "
                "sentinels know the primary by\n");
        return -1;
    }

    return 0;
}


int
wa_options_parse(wa_options_t *o, int argc, char **argv)
{
    int                 rc;
    size_t              i;
    const char         *v, *flag[WA_NOPTIONS];
    const wa_option_t  *opt;

    memset(o, 0, sizeof(*o));
    memset(flag, 0, sizeof(flag));

    rc = options_flags(argc, argv, flag, &o->portfolio_owned);
    if (rc != 0) {
        if (rc > 0) {
            exit(0);
        }

        return -1;
    }

    /* the flag, else the environment, else the default */
    for (i = 0; i < WA_NOPTIONS; i++) {
        opt = &wa_options[i];

        v = flag[i] ? flag[i] : getenv(opt->env);
        if (v == NULL) {
            v = opt->def;
        }

        if (opt->parse(opt, v, (char *) o + opt->offset) != 0) {
            return -1;
        }
    }

    if (options_check(o) != 0) {
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

    } else if (o->user) {
        fprintf(stderr, "wa-relayd: --redis-user \"%s\" needs "
                "--redis-password-file\n", o->user);
        return -1;
    }

    return 0;
}


void
wa_options_free(wa_options_t *o)
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
    free(o->portfolio_owned);
}
