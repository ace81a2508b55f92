/*
 * wa-relayd: what the dashboard shows, as JSON (/api/dashboard), read from
 * the state the worker keeps (docs/state.md) at each request: business
 * portfolios (their messaging limit and the users reached in 24 h against
 * it), business numbers (quality, status, tier, open windows, opt-outs
 * and response times today), templates, A/B
 * read rates, the streams' lag and the sender's outcomes.  Keys are found
 * with SCAN, a page at a time; contacts are counted up to a cap, and the
 * answer says when it stopped there.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dashboard.h"
#include "log.h"
#include "wa_streams.h"

#define WA_DASH_CONTACTS  20000    /* contacts looked at per number */
#define WA_DASH_KEYS      2000     /* numbers, templates, trackers */

static const char  wa_dashboard_html[] =
#include "dashboard_html.h"
    ;


/* a reply's fields [name, value, ...] as a JSON object of strings */
static json_t *
wa_pairs(redisReply *r)
{
    size_t   i;
    json_t  *o;

    o = json_object();

    for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2)
    {
        if (r->element[i]->type == REDIS_REPLY_STRING
            && r->element[i + 1]->type == REDIS_REPLY_STRING)
        {
            json_object_set_new(o, r->element[i]->str,
                                json_stringn(r->element[i + 1]->str,
                                             r->element[i + 1]->len));
        }
    }

    return o;
}


/* one command of C strings and its reply (NULL: the link broke) */
static redisReply *
wa_cmd(wa_link_t *l, const char *c, const char *a1, const char *a2,
    const char *a3)
{
    wa_args_t  a;

    wa_args(&a, c, a1, a2, a3, NULL);

    return wa_link_call(l, &a);
}


/*
 * The keys matching pattern, up to max, each given to fn with the HGETALL
 * of it (pipelined, a page at a time).  -1 when the link broke.
 */
typedef void (*wa_each_pt)(void *data, const char *key, redisReply *hash);

static int
wa_scan_hashes(wa_link_t *l, const char *pattern, size_t max, wa_each_pt fn,
    void *data)
{
    size_t       i, seen;
    char         cursor[32];
    wa_args_t    a;
    redisReply  *r, *keys, *h;

    snprintf(cursor, sizeof(cursor), "0");
    seen = 0;

    do {
        wa_args(&a, "SCAN", cursor, "MATCH", pattern, "COUNT", "500",
                "TYPE", "hash", NULL);
        r = wa_link_call(l, &a);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return -1;
        }

        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        keys = r->element[1];

        for (i = 0; i < keys->elements; i++) {
            wa_args(&a, "HGETALL", keys->element[i]->str, NULL);
            if (wa_link_append(l, &a) != 0) {
                freeReplyObject(r);
                return -1;
            }
        }

        for (i = 0; i < keys->elements; i++) {
            h = wa_link_reply(l);
            if (h == NULL) {
                freeReplyObject(r);
                return -1;
            }

            if (seen++ < max) {
                fn(data, keys->element[i]->str, h);
            }

            freeReplyObject(h);
        }

        freeReplyObject(r);

    } while (strcmp(cursor, "0") != 0 && seen < max);

    return 0;
}


/* what a number's contacts say now: windows open, opt-outs today */
typedef struct {
    long long   now;
    long long   day_start;
    long long   windows;
    long long   optouts;
    long long   contacts;
} wa_contacts_t;


/* a field of a hash's HGETALL as a C string, or NULL */
static const char *
wa_field(redisReply *h, const char *name)
{
    redisReply  *v;

    v = wa_reply_field(h, name);

    return v && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}


static void
wa_each_contact(void *data, const char *key, redisReply *h)
{
    const char     *v;
    wa_contacts_t  *c = data;

    (void) key;

    c->contacts++;

    v = wa_field(h, "window_expires_at");
    if (v && atoll(v) > c->now) {
        c->windows++;
    }

    v = wa_field(h, "opted_out_at");
    if (v && atoll(v) >= c->day_start && (v = wa_field(h, "opted_out"))
        && strcmp(v, "1") == 0)
    {
        c->optouts++;
    }
}


typedef struct {
    wa_link_t           *l;
    const wa_options_t  *o;
    json_t              *numbers;
    long long            now;
    int                  contacts;      /* count windows and opt-outs */
    char                 today[16];
} wa_numbers_t;


/* one business number, from wa:phone:<id> and what hangs off it */
static void
wa_each_phone(void *data, const char *key, redisReply *h)
{
    char            k[512];
    const char     *pnid, *display;
    json_t         *n;
    redisReply     *r;
    wa_contacts_t   c;
    wa_numbers_t   *ns = data;

    pnid = strrchr(key, ':') + 1;
    display = wa_field(h, "display_phone_number");

    n = json_object();
    json_object_set_new(n, "phone_number_id", json_string(pnid));
    json_object_set_new(n, "waba_id",
                        json_string(wa_field(h, "waba_id")
                                    ? wa_field(h, "waba_id") : ""));
    json_object_set_new(n, "display_phone_number",
                        json_string(display ? display : ""));

    snprintf(k, sizeof(k), "%s:number:%s", ns->o->prefix,
             display ? display : "-");
    r = wa_cmd(ns->l, "HGETALL", k, NULL, NULL);
    json_object_set_new(n, "number", wa_pairs(r));
    freeReplyObject(r);

    snprintf(k, sizeof(k), "%s:daily:%s:%s", ns->o->prefix, pnid, ns->today);
    r = wa_cmd(ns->l, "HGETALL", k, NULL, NULL);
    json_object_set_new(n, "today", wa_pairs(r));
    freeReplyObject(r);

    snprintf(k, sizeof(k), "%s:reach:%s", ns->o->prefix, pnid);
    r = wa_cmd(ns->l, "ZCARD", k, NULL, NULL);
    json_object_set_new(n, "reached_24h", json_integer(
                            r && r->type == REDIS_REPLY_INTEGER
                            ? r->integer : 0));
    freeReplyObject(r);

    json_array_append_new(ns->numbers, n);

    if (!ns->contacts) {
        return;
    }

    memset(&c, 0, sizeof(c));
    c.now = ns->now;
    c.day_start = ns->now - ns->now % 86400;
    snprintf(k, sizeof(k), "%s:contact:%s:*", ns->o->prefix, pnid);
    (void) wa_scan_hashes(ns->l, k, WA_DASH_CONTACTS, wa_each_contact, &c);

    json_object_set_new(n, "windows_open", json_integer(c.windows));
    json_object_set_new(n, "optouts_today", json_integer(c.optouts));
    json_object_set_new(n, "contacts_counted", json_integer(c.contacts));
    json_object_set_new(n, "contacts_capped",
                        json_boolean(c.contacts >= WA_DASH_CONTACTS));
}


/* a hash as an object, its key's last parts under "key" */
typedef struct {
    json_t      *list;
    size_t       skip;              /* the key's "<prefix>:<kind>:" */
} wa_list_t;


static void
wa_each_hash(void *data, const char *key, redisReply *h)
{
    json_t     *o;
    wa_list_t  *l = data;

    o = wa_pairs(h);
    json_object_set_new(o, "key", json_string(key + l->skip));
    json_array_append_new(l->list, o);
}


static json_t *
wa_hashes(wa_link_t *l, const wa_options_t *o, const char *kind)
{
    char       pattern[256];
    wa_list_t  list;

    list.list = json_array();
    list.skip = strlen(o->prefix) + strlen(kind) + 2;
    snprintf(pattern, sizeof(pattern), "%s:%s:*", o->prefix, kind);

    (void) wa_scan_hashes(l, pattern, WA_DASH_KEYS, wa_each_hash, &list);

    return list.list;
}


/* each group of the worker's streams: lag and pending; the length */
static json_t *
wa_streams(wa_link_t *l, const wa_options_t *o)
{
    int          i;
    char         key[256];
    size_t       k, f;
    json_t      *out, *s, *g;
    redisReply  *r;

    static const char  *names[] = {
        "messages", "statuses", "account", WA_STREAM_OUTBOX, "media"
    };

    out = json_array();

    for (i = 0; i < (int) (sizeof(names) / sizeof(names[0])); i++) {
        snprintf(key, sizeof(key), "%s:%s", o->prefix, names[i]);

        r = wa_cmd(l, "XINFO", "GROUPS", key, NULL);

        for (k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements;
             k++)
        {
            s = json_object();
            json_object_set_new(s, "stream", json_string(key));

            for (f = 0; f + 1 < r->element[k]->elements; f += 2) {
                g = r->element[k]->element[f + 1]->type
                    == REDIS_REPLY_INTEGER
                    ? json_integer(r->element[k]->element[f + 1]->integer)
                    : r->element[k]->element[f + 1]->type
                      == REDIS_REPLY_STRING
                      ? json_string(r->element[k]->element[f + 1]->str)
                      : json_null();
                json_object_set_new(s, r->element[k]->element[f]->str, g);
            }

            json_array_append_new(out, s);
        }

        freeReplyObject(r);
    }

    return out;
}


static json_t *
wa_recent_alerts(wa_link_t *l, const wa_options_t *o)
{
    char         key[256];
    size_t       i;
    json_t      *out;
    wa_args_t    a;
    redisReply  *r;

    snprintf(key, sizeof(key), "%s:alerts", o->prefix);
    wa_args(&a, "XREVRANGE", key, "+", "-", "COUNT", "10", NULL);
    r = wa_link_call(l, &a);

    out = json_array();

    for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        json_array_append_new(out, wa_pairs(r->element[i]->element[1]));
    }

    freeReplyObject(r);

    return out;
}


/*
 * Every business number (wa:phone:<id>) with its quality, tier, users
 * reached in 24 h and today's trackers; with contacts set, its open
 * windows and today's opt-outs too (a SCAN of its contacts)
 */
json_t *
wa_dashboard_numbers(wa_link_t *l, const wa_options_t *o, int contacts,
    char *today, size_t size)
{
    char          key[256];
    time_t        now;
    struct tm     tm;
    wa_numbers_t  ns;

    now = time(NULL);
    gmtime_r(&now, &tm);

    ns.l = l;
    ns.o = o;
    ns.now = now;
    ns.contacts = contacts;
    ns.numbers = json_array();
    strftime(ns.today, sizeof(ns.today), "%Y-%m-%d", &tm);
    snprintf(today, size, "%s", ns.today);

    snprintf(key, sizeof(key), "%s:phone:*", o->prefix);
    (void) wa_scan_hashes(l, key, WA_DASH_KEYS, wa_each_phone, &ns);

    return ns.numbers;
}


/* a WABA's messaging limit into p, when later than what p holds */
static void
wa_portfolio_limit(wa_link_t *l, const wa_options_t *o, const char *waba,
    json_t *p)
{
    char         key[256];
    wa_args_t    a;
    redisReply  *r;

    snprintf(key, sizeof(key), "%s:waba:%s", o->prefix, waba);
    wa_args(&a, "HMGET", key, "limit_users", "limit_tier", "limit_at",
            NULL);
    r = wa_link_call(l, &a);

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3
        && r->element[0]->type == REDIS_REPLY_STRING
        && (r->element[2]->type != REDIS_REPLY_STRING
            || atoll(r->element[2]->str) >= json_integer_value(
                   json_object_get(p, "limit_at"))))
    {
        json_object_set_new(p, "limit_users",
                            json_integer(atoll(r->element[0]->str)));
        json_object_set_new(p, "limit_tier", json_string(
            r->element[1]->type == REDIS_REPLY_STRING
            ? r->element[1]->str : ""));
        json_object_set_new(p, "limit_at", json_integer(
            r->element[2]->type == REDIS_REPLY_STRING
            ? atoll(r->element[2]->str) : 0));
    }

    freeReplyObject(r);
}


/* a portfolio (portfolio.h): its WABAs' latest limit, users reached */
static json_t *
wa_portfolio(wa_link_t *l, const wa_options_t *o, const char *id,
    const char *waba)
{
    char         key[256], since[32], *w, *next;
    json_t      *p;
    redisReply  *r;

    p = json_object();
    json_object_set_new(p, "portfolio", json_string(id));
    json_object_set_new(p, "numbers", json_array());

    snprintf(key, sizeof(key), "%s:portfolio:%s", o->prefix, id);
    r = wa_cmd(l, "HGET", key, "wabas", NULL);
    json_object_set_new(p, "wabas", json_string(
        r && r->type == REDIS_REPLY_STRING ? r->str : waba));

    for (w = r && r->type == REDIS_REPLY_STRING ? r->str : NULL; w;
         w = next)
    {
        next = strchr(w, ',');
        if (next) {
            *next++ = '\0';
        }

        wa_portfolio_limit(l, o, w, p);
    }

    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        wa_portfolio_limit(l, o, waba, p);
    }

    freeReplyObject(r);

    snprintf(key, sizeof(key), "%s:preach:%s", o->prefix, id);
    snprintf(since, sizeof(since), "%lld", (long long) time(NULL) - 86400);
    r = wa_cmd(l, "ZCOUNT", key, since, "+inf");
    json_object_set_new(p, "reached_24h", json_integer(
                            r && r->type == REDIS_REPLY_INTEGER
                            ? r->integer : 0));
    freeReplyObject(r);

    return p;
}


/*
 * The business portfolios of the numbers (each WABA its own but for
 * --portfolio), with the limit they share and the users reached in 24 h;
 * each number gets its portfolio's id
 */
json_t *
wa_dashboard_portfolios(wa_link_t *l, const wa_options_t *o,
    json_t *numbers)
{
    char         key[256];
    size_t       i;
    json_t      *by, *of, *out, *n, *p;
    const char  *waba, *id;
    redisReply  *r;

    by = json_object();             /* portfolio id -> portfolio */
    of = json_object();             /* WABA -> its portfolio's id */

    json_array_foreach(numbers, i, n) {
        waba = json_string_value(json_object_get(n, "waba_id"));
        if (waba == NULL || *waba == '\0') {
            continue;
        }

        /* a WABA's portfolio asked once, however many numbers it has */
        id = json_string_value(json_object_get(of, waba));
        if (id == NULL) {
            snprintf(key, sizeof(key), "%s:waba:%s", o->prefix, waba);
            r = wa_cmd(l, "HGET", key, "portfolio", NULL);
            json_object_set_new(of, waba, json_string(
                r && r->type == REDIS_REPLY_STRING ? r->str : waba));
            freeReplyObject(r);
            id = json_string_value(json_object_get(of, waba));
        }

        p = json_object_get(by, id);
        if (p == NULL) {
            p = wa_portfolio(l, o, id, waba);
            json_object_set_new(by, id, p);
        }

        json_array_append(json_object_get(p, "numbers"),
                          json_object_get(n, "phone_number_id"));
        json_object_set_new(n, "portfolio", json_string(id));
    }

    out = json_array();
    json_object_foreach(by, id, p) {
        json_array_append(out, p);
    }

    json_decref(by);
    json_decref(of);

    return out;
}


static char *
wa_dashboard_json(wa_link_t *l, const wa_options_t *o, size_t *len)
{
    char          key[256], *body, today[16];
    json_t       *d, *numbers;
    redisReply   *r;

    numbers = wa_dashboard_numbers(l, o, 1, today, sizeof(today));

    d = json_object();
    json_object_set_new(d, "generated_at", json_integer(time(NULL)));
    json_object_set_new(d, "today", json_string(today));
    json_object_set_new(d, "messaging_limit",
                        json_string(o->messaging_limit));
    json_object_set_new(d, "portfolios",
                        wa_dashboard_portfolios(l, o, numbers));
    json_object_set_new(d, "numbers", numbers);
    json_object_set_new(d, "number_states", wa_hashes(l, o, "number"));
    json_object_set_new(d, "templates", wa_hashes(l, o, "template"));
    json_object_set_new(d, "trackers", wa_hashes(l, o, "tstats"));
    json_object_set_new(d, "senders", wa_hashes(l, o, "sender"));
    json_object_set_new(d, "streams", wa_streams(l, o));
    json_object_set_new(d, "alerts", wa_recent_alerts(l, o));

    snprintf(key, sizeof(key), "%s:sender:paused", o->prefix);
    r = wa_cmd(l, "GET", key, NULL, NULL);
    json_object_set_new(d, "sender_paused",
                        r && r->type == REDIS_REPLY_STRING
                        ? json_string(r->str) : json_null());
    freeReplyObject(r);

    body = json_dumps(d, JSON_COMPACT);
    json_decref(d);

    *len = body ? strlen(body) : 0;

    return body;
}


char *
wa_dashboard(const char *url, wa_link_t *l, const wa_options_t *o,
    size_t *len, int *status)
{
    *status = 200;

    if (strcmp(url, "/") == 0) {
        *len = sizeof(wa_dashboard_html) - 1;
        return strdup(wa_dashboard_html);
    }

    if (strcmp(url, "/api/dashboard") == 0) {
        return wa_dashboard_json(l, o, len);
    }

    return NULL;
}


const char *
wa_dashboard_type(const char *url)
{
    return strcmp(url, "/") == 0 ? "text/html; charset=utf-8"
                                 : "application/json";
}
