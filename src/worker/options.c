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

    wa_keywords_free(&o->optout);
    wa_keywords_free(&o->optin);
}
