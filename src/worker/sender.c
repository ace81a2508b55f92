/*
 * wa-relayd: the sender, a thread of its own with its own Redis connection.
 *
 * It reads <prefix>:outbox in the consumer group, asks the governor
 * (wa_govern_1 in redis/wa_state.lua) whether each entry may go, paces what
 * may go per business number and per recipient, and sends it to the Graph
 * API through libcurl's multi interface, many requests in flight.
 *
 *   outbox entry -> parsed -> ready queue (in memory, still pending in the
 *   group) -> governor -> pacing -> in flight -> sent | deferred | dead
 *
 * Entries that must wait longer than pacing allows (governor deferrals,
 * the pair limit, retries) go to <prefix>:deferred, a sorted set by due
 * time, with their fields in <prefix>:deferred:entries: a restart loses
 * none.  An entry leaves the outbox group (XACK) in the same MULTI that
 * puts it in its next place.
 */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "pace.h"
#include "wa_graph.h"
#include "wa_outbox.h"
#include "reader.h"
#include "worker.h"

#define LEASE_MS       60000        /* a claimed deferred entry's lease */
#define IDEM_TTL       (30 * 86400) /* Meta keeps a message 30 days */
#define MAX_FIELDS     64


typedef struct job_s  job_t;

struct job_s {
    job_t               *next;
    char                 id[64];        /* outbox entry id */
    json_t              *fields;        /* the entry's fields */
    wa_outbox_t          out;
    long                 attempts;
    int                  pending;       /* still pending in the group */
    long long            ready_ms;
    long long            started_ms;
    CURL                *easy;
    struct curl_slist   *headers;
    char                *request;
    char                *response;
    size_t               response_len;
};


/* what became of the outbox entries (docs/outbox.md) */
typedef struct {
    long long            sent;
    long long            refused;       /* the governor said no */
    long long            deferred;      /* to <prefix>:deferred, again later */
    long long            failed;        /* given up: in <prefix>:dead */
    long long            duplicates;    /* an idempotency key used before */
} wa_sender_counters_t;


typedef struct {
    const wa_options_t  *o;
    wa_link_t            link;
    wa_reader_t          reader;        /* the outbox, in the group */
    wa_sender_counters_t n;
    long long            next_stats;
    CURLM               *multi;
    job_t               *ready;         /* in arrival order */
    job_t              **ready_tail;
    long                 nready;
    long                 inflight;
    int                  paused;        /* a token error: nothing goes */
    long long            next_pause_check;
    long long            next_claim;
    long long            next_trim;
    char                 outbox[256];
    char                 deferred[256];
    char                 entries[256];
    char                 sent[256];
    char                 dead[256];
    char                 alerts[256];
    char                 paused_key[256];
    char                 auth[1024];
    wa_pace_t               numbers;
    wa_pace_t               pairs;
} wa_sender_t;


static pthread_t              wa_sender_thread;
static atomic_int             sender_stopping;   /* another thread sets it */
static int                    sender_running;


static void
job_free(job_t *j)
{
    if (j->easy) {
        curl_easy_cleanup(j->easy);
    }

    curl_slist_free_all(j->headers);
    free(j->request);
    free(j->response);
    wa_outbox_free(&j->out);
    json_decref(j->fields);
    free(j);
}


/* the entry's fields as the parser wants them; -1 and why if it cannot */
static int
job_parse(job_t *j, const char **err)
{
    size_t       n, lens[MAX_FIELDS];
    json_t      *v;
    const char  *key, *names[MAX_FIELDS], *values[MAX_FIELDS];

    n = 0;

    json_object_foreach(j->fields, key, v) {
        if (n == MAX_FIELDS) {
            *err = "too many fields";
            return -1;
        }

        if (!json_is_string(v)) {
            continue;
        }

        names[n] = key;
        values[n] = json_string_value(v);
        lens[n] = json_string_length(v);
        n++;
    }

    return wa_outbox_parse(&j->out, names, values, lens, n, err);
}


/* the fields plus what the sender keeps: attempts */
static char *
job_dump(job_t *j, const char *why)
{
    char  attempts[32];

    snprintf(attempts, sizeof(attempts), "%ld", j->attempts);
    json_object_set_new(j->fields, "_attempts", json_string(attempts));
    json_object_set_new(j->fields, "_reason", json_string(why));

    return json_dumps(j->fields, JSON_COMPACT);
}


/* run the queued commands of a MULTI ... EXEC; -1 if the link is gone */
static int
exec_replies(wa_sender_t *s, int n)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < n; i++) {
        r = wa_link_reply(&s->link);
        if (r == NULL) {
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            /* a runtime error inside the MULTI: Redis ran the others */
            wa_log(WA_LOG_ERROR, "sender: Redis: %s", r->str);
        }

        freeReplyObject(r);
    }

    return 0;
}


/* a command queued in a MULTI: an error shows in exec_replies */
static void
queue(wa_sender_t *s, wa_args_t *a)
{
    (void) wa_link_append(&s->link, a);
}


/* the entry leaves its current place: the group, or the deferred set */
static int
job_release(wa_sender_t *s, job_t *j)
{
    wa_args_t  a;

    if (j->pending) {
        wa_args(&a, "XACK", s->outbox, s->o->group, j->id, NULL);

    } else {
        wa_args(&a, "ZREM", s->deferred, j->id, NULL);
    }

    queue(s, &a);

    wa_args(&a, "HDEL", s->entries, j->id, NULL);
    queue(s, &a);

    return 2;
}


static void
multi(wa_sender_t *s)
{
    wa_args_t  a;

    wa_args(&a, "MULTI", NULL);
    queue(s, &a);
}


/* EXEC, and the replies of the n commands queued before it */
static int
exec(wa_sender_t *s, int n)
{
    wa_args_t  a;

    wa_args(&a, "EXEC", NULL);
    queue(s, &a);

    return exec_replies(s, n + 1);
}


static int
job_defer(wa_sender_t *s, job_t *j, long long due_ms, const char *why)
{
    int        n;
    char      *dump;
    wa_args_t  a;

    dump = job_dump(j, why);
    if (dump == NULL) {
        return -1;
    }

    multi(s);
    wa_args(&a, "HSET", s->entries, j->id, dump, NULL);
    queue(s, &a);
    wa_args(&a, "ZADD", s->deferred, NULL);
    wa_args_ll(&a, due_ms);
    wa_args_add(&a, j->id);
    queue(s, &a);
    n = 3;

    if (j->pending) {
        wa_args(&a, "XACK", s->outbox, s->o->group, j->id, NULL);
        queue(s, &a);
        n++;
    }

    free(dump);

    wa_log(WA_LOG_DEBUG, "sender: %s deferred %lld ms: %s", j->id,
            due_ms - wa_clock_wall_ms(), why);
    s->n.deferred++;

    return exec(s, n);
}


/* <prefix>:idem:<key> */
static void
idem_key(wa_sender_t *s, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "%s:idem:%s", s->o->prefix, key);
}


static int
job_dead(wa_sender_t *s, job_t *j, const char *outcome, const char *why,
    long code)
{
    int        n, refused;
    char      *dump, key[512];
    wa_args_t  a;

    dump = json_dumps(j->fields, JSON_COMPACT);
    if (dump == NULL) {
        return -1;
    }

    multi(s);
    wa_args(&a, "XADD", s->dead, "*", "stream", s->outbox, "id", j->id,
            "outcome", outcome, "reason", why, "code", NULL);
    wa_args_ll(&a, code);
    wa_args_add(&a, "entry");
    wa_args_add(&a, dump);
    queue(s, &a);
    n = 2 + job_release(s, j);     /* MULTI, XADD */

    if (j->out.idempotency_key) {
        /* not sent: the caller may try again with the same key */
        idem_key(s, j->out.idempotency_key, key, sizeof(key));
        wa_args(&a, "DEL", key, NULL);
        queue(s, &a);
        n++;
    }

    free(dump);

    refused = strcmp(outcome, "refused") == 0;
    wa_log(refused ? WA_LOG_INFO : WA_LOG_ERROR, "sender: %s %s: %s", j->id,
           outcome, why);

    if (refused) {
        s->n.refused++;

    } else {
        s->n.failed++;
    }

    return exec(s, n);
}


/* "" for an absent value of an entry */
#define opt(v)  ((v) ? (v) : "")

static int
job_sent(wa_sender_t *s, job_t *j, const wa_graph_result_t *res)
{
    int          n;
    char         key[512];
    wa_args_t    a;
    long long    now;
    const char  *user;

    now = wa_clock_ms();
    user = wa_outbox_user(&j->out);

    multi(s);
    wa_args(&a, "XADD", s->sent, "*", "outbox_id", j->id, "wamid",
            res->wamid, "phone_number_id", j->out.phone_number_id, "to",
            opt(user), "attempts", NULL);
    wa_args_ll(&a, j->attempts + 1);
    wa_args_add(&a, "latency_ms");
    wa_args_ll(&a, now - j->started_ms);
    wa_args_add(&a, "auto_reply");
    wa_args_add(&a, opt(j->out.auto_reply));
    queue(s, &a);
    n = 2 + job_release(s, j);     /* MULTI, XADD */

    if (res->wamid[0] && j->out.type != WA_OUT_READ) {
        wa_args(&a, "FCALL", "wa_sent_1", "0", s->o->prefix, res->wamid,
                j->out.phone_number_id, opt(user), NULL);
        wa_args_ll(&a, (long long) time(NULL));
        wa_args_add(&a, opt(j->out.template_name));
        wa_args_add(&a, opt(j->out.language));
        wa_args_add(&a, opt(j->out.variant));
        queue(s, &a);
        n++;
    }

    if (j->out.idempotency_key) {
        idem_key(s, j->out.idempotency_key, key, sizeof(key));
        wa_args(&a, "SET", key, res->wamid, "EX", NULL);
        wa_args_ll(&a, IDEM_TTL);
        queue(s, &a);
        n++;
    }

    s->n.sent++;

    return exec(s, n);
}


static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    job_t   *j = arg;
    char    *p;
    size_t   len;

    len = size * nmemb;

    if (j->response_len + len > 1024 * 1024) {
        return 0;                    /* no answer of ours is that big */
    }

    p = realloc(j->response, j->response_len + len + 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p + j->response_len, data, len);
    j->response = p;
    j->response_len += len;
    p[j->response_len] = '\0';

    return len;
}


static int
job_start(wa_sender_t *s, job_t *j)
{
    char  url[1024], callback[128];

    snprintf(callback, sizeof(callback), "wa:%s", j->id);
    j->request = wa_outbox_request(&j->out, callback);

    j->easy = curl_easy_init();
    if (j->request == NULL || j->easy == NULL) {
        wa_log(WA_LOG_ERROR, "sender: out of memory");
        return -1;
    }

    snprintf(url, sizeof(url), "%s/%s/%s/messages", s->o->graph_url,
             s->o->graph_version, j->out.phone_number_id);

    j->headers = curl_slist_append(NULL, s->auth);
    j->headers = curl_slist_append(j->headers,
                                   "Content-Type: application/json");

    curl_easy_setopt(j->easy, CURLOPT_URL, url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->request);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, s->o->request_timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     s->o->request_timeout_ms);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(j->easy, CURLOPT_HTTP_VERSION,
                     (long) CURL_HTTP_VERSION_2TLS);

    if (curl_multi_add_handle(s->multi, j->easy) != CURLM_OK) {
        return -1;
    }

    j->started_ms = wa_clock_ms();
    s->inflight++;

    return 0;
}


/* how long before a retry: doubling, 4^n for the pair limit */
static long long
backoff(wa_sender_t *s, job_t *j, wa_verdict_t v)
{
    long long  d;
    long       n;

    n = j->attempts < 20 ? j->attempts : 20;

    switch (v) {

    case WA_RETRY_RECIPIENT:
        d = s->o->retry_base_ms;
        while (n-- > 1 && d < 3600000) {
            d *= 4;
        }
        return d;

    case WA_RETRY_LATER:
        return 60 * s->o->retry_base_ms;

    default:
        d = s->o->retry_base_ms;
        while (n-- > 1 && d < 600000) {
            d *= 2;
        }
        return d;
    }
}


static int
job_done(wa_sender_t *s, job_t *j, CURLcode cc)
{
    long               status;
    wa_args_t          a;
    wa_graph_result_t  res;

    status = 0;

    if (cc == CURLE_OK) {
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    }

    wa_graph_result(&res, status, j->response, j->response_len,
                    curl_easy_strerror(cc));

    if (res.verdict == WA_SENT) {
        return job_sent(s, j, &res);
    }

    j->attempts++;

    wa_log(WA_LOG_WARN, "sender: %s attempt %ld: %s (%s)", j->id, j->attempts,
            res.reason, wa_verdict_name(res.verdict));

    switch (res.verdict) {

    case WA_TOKEN:
        /* the entry waits; nothing goes until an operator fixes the token */
        s->paused = 1;
        multi(s);
        wa_args(&a, "SET", s->paused_key, res.reason, NULL);
        queue(s, &a);
        wa_args(&a, "XADD", s->alerts, "*", "severity", "critical", "kind",
                "sender", "subject", "token", "message",
                "the Graph API refused the access token: sending paused "
                "until the token is fixed and <prefix>:sender:paused "
                "deleted", NULL);
        queue(s, &a);

        if (exec(s, 3) != 0) {
            return -1;
        }

        wa_log(WA_LOG_ERROR, "sender: the Graph API refused the token (%s): "
                "sending paused", res.reason);

        return job_defer(s, j, wa_clock_wall_ms() + 1000, res.reason);

    case WA_GIVE_UP:
        return job_dead(s, j, "failed", res.reason, res.code);

    default:
        if (j->attempts >= s->o->max_attempts) {
            return job_dead(s, j, "failed", res.reason, res.code);
        }

        if (res.verdict == WA_RETRY_NUMBER) {
            wa_pace_hold(&s->numbers, j->out.phone_number_id,
                      wa_clock_ms() + backoff(s, j, res.verdict));
        }

        return job_defer(s, j, wa_clock_wall_ms() + backoff(s, j, res.verdict),
                         res.reason);
    }
}


static int
collect(wa_sender_t *s)
{
    int       left, rc;
    job_t    *j;
    CURLMsg  *m;

    rc = 0;

    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }

        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &j);
        curl_multi_remove_handle(s->multi, m->easy_handle);
        s->inflight--;

        if (rc == 0 && job_done(s, j, m->data.result) != 0) {
            rc = -1;
        }

        job_free(j);
    }

    return rc;
}


/* a new job in the ready queue, from a stream entry or a deferred one */
static int
job_add(wa_sender_t *s, const char *id, json_t *fields, int pending)
{
    job_t       *j;
    const char  *err, *v;

    j = calloc(1, sizeof(job_t));
    if (j == NULL) {
        json_decref(fields);
        return -1;
    }

    snprintf(j->id, sizeof(j->id), "%s", id);
    j->fields = fields;
    j->pending = pending;
    v = json_string_value(json_object_get(fields, "_attempts"));
    j->attempts = v ? atol(v) : 0;

    if (job_parse(j, &err) != 0) {
        if (job_dead(s, j, "invalid", err, 0) != 0) {
            job_free(j);
            return -1;
        }

        job_free(j);
        return 0;
    }

    j->ready_ms = wa_clock_ms();
    *s->ready_tail = j;
    s->ready_tail = &j->next;
    s->nready++;

    return 0;
}


/* an idempotency key seen before: the entry is answered, not sent again */
static int
seen_before(wa_sender_t *s, const char *id, json_t *fields)
{
    int          dup;
    char         idem[512];
    wa_args_t    a;
    const char  *key;
    redisReply  *r;

    key = json_string_value(json_object_get(fields, "idempotency_key"));
    if (key == NULL || key[0] == '\0') {
        return 0;
    }

    idem_key(s, key, idem, sizeof(idem));
    wa_args(&a, "SET", idem, id, "NX", "EX", NULL);
    wa_args_ll(&a, IDEM_TTL);
    wa_args_add(&a, "GET");

    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    dup = r->type == REDIS_REPLY_STRING;

    if (dup) {
        wa_log(WA_LOG_INFO, "sender: %s: idempotency key %s already used by "
                "%s, not sent again", id, key, r->str);

        multi(s);
        wa_args(&a, "XADD", s->sent, "*", "outbox_id", id, "duplicate_of",
                NULL);
        wa_args_addn(&a, r->str, r->len);
        queue(s, &a);
        wa_args(&a, "XACK", s->outbox, s->o->group, id, NULL);
        queue(s, &a);
        freeReplyObject(r);
        s->n.duplicates++;

        return exec(s, 3) == 0 ? 1 : -1;
    }

    freeReplyObject(r);

    return 0;
}


static json_t *
entry_fields(redisReply *e)
{
    size_t   i;
    json_t  *f;

    f = json_object();

    for (i = 0; f && i + 1 < e->elements; i += 2) {
        json_object_set_new(f, e->element[i]->str,
                            json_stringn(e->element[i + 1]->str,
                                         e->element[i + 1]->len));
    }

    return f;
}


/* outbox entries read or taken over (a wa_reader_take_pt) */
static int
take_entries(void *data, int stream, redisReply **entries, size_t n)
{
    int          rc;
    size_t       i;
    json_t      *f;
    wa_sender_t    *s = data;
    redisReply  *e;

    (void) stream;

    for (i = 0; i < n; i++) {
        e = entries[i];

        if (!wa_reader_valid(e)) {
            continue;
        }

        f = entry_fields(e->element[1]);
        if (f == NULL) {
            return -1;
        }

        rc = seen_before(s, e->element[0]->str, f);
        if (rc < 0) {
            json_decref(f);
            return -1;
        }

        if (rc == 1) {
            json_decref(f);
            continue;
        }

        if (job_add(s, e->element[0]->str, f, 1) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
read_outbox(wa_sender_t *s, long block_ms)
{
    int          rc;
    long         room;
    redisReply  *r, *entries;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    if (wa_reader_read(&s->reader, ">", room, block_ms, &r) != 0) {
        return -1;
    }

    entries = wa_reader_entries(&s->reader, r, 0);
    rc = entries ? take_entries(s, 0, entries->element, entries->elements)
                 : 0;

    if (r) {
        freeReplyObject(r);
    }

    return rc;
}


/* entries a dead sender held: taken over once idle */
static int
reclaim_outbox(wa_sender_t *s)
{
    return wa_reader_claim(&s->reader, 0, s->o->max_inflight, 1,
                           take_entries, s);
}


/* deferred entries now due: claimed with a lease, then into the queue */
static int
take_due(wa_sender_t *s)
{
    size_t        i;
    long          room;
    json_t       *f;
    wa_args_t     a;
    redisReply   *r, *e;
    json_error_t  jerr;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    wa_args(&a, "ZRANGEBYSCORE", s->deferred, "-inf", NULL);
    wa_args_ll(&a, wa_clock_wall_ms());
    wa_args_add(&a, "LIMIT");
    wa_args_add(&a, "0");
    wa_args_ll(&a, room);

    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        wa_args(&a, "HGET", s->entries, r->element[i]->str, NULL);
        e = wa_link_call(&s->link, &a);
        if (e == NULL) {
            freeReplyObject(r);
            return -1;
        }

        if (e->type != REDIS_REPLY_STRING) {
            /* its fields are gone: nothing to send */
            freeReplyObject(e);
            wa_args(&a, "ZREM", s->deferred, r->element[i]->str, NULL);
            e = wa_link_call(&s->link, &a);
            if (e) {
                freeReplyObject(e);
            }
            continue;
        }

        f = json_loadb(e->str, e->len, 0, &jerr);
        freeReplyObject(e);

        /* a lease: if this sender dies, the entry comes due again */
        wa_args(&a, "ZADD", s->deferred, "XX", NULL);
        wa_args_ll(&a, wa_clock_wall_ms() + LEASE_MS);
        wa_args_add(&a, r->element[i]->str);
        e = wa_link_call(&s->link, &a);
        if (e == NULL) {
            json_decref(f);
            freeReplyObject(r);
            return -1;
        }

        freeReplyObject(e);

        if (f == NULL || job_add(s, r->element[i]->str, f, 0) != 0) {
            freeReplyObject(r);
            return -1;
        }
    }

    freeReplyObject(r);

    return 0;
}


/* governor, pacing, start: every ready job that may go now */
static int
dispatch(wa_sender_t *s)
{
    job_t       **pj, *j;
    double        tolerance;
    wa_args_t     a;
    long long     now, wait;
    const char   *user, *type;
    redisReply   *r;

    tolerance = 500.0 / s->o->rate;
    if (tolerance < 5.0 && s->o->rate > 200) {
        tolerance = 5.0;
    }

    for (pj = &s->ready; (j = *pj) != NULL; ) {

        if (s->inflight >= s->o->max_inflight || s->paused) {
            break;
        }

        now = wa_clock_ms();

        /*
         * the number's rate: wait here, others' numbers go on.  A loop
         * that comes late (a Redis round trip, a poll) may catch up: the
         * tolerance is half an interval, or 5 ms at high rates, which
         * keeps any second within about 1% of the rate.
         */
        if (wa_pace_wait(&s->numbers, j->out.phone_number_id, now,
                      tolerance) > 0)
        {
            pj = &j->next;
            continue;
        }

        user = wa_outbox_user(&j->out);
        type = j->out.type == WA_OUT_READ ? "read"
               : j->out.type == WA_OUT_TEMPLATE ? "template" : "message";

        wa_args(&a, "FCALL", "wa_govern_1", "0", s->o->prefix, NULL);
        wa_args_ll(&a, (long long) time(NULL));
        wa_args_add(&a, j->out.phone_number_id);
        wa_args_add(&a, opt(user));
        wa_args_add(&a, type);
        wa_args_add(&a, opt(j->out.template_name));
        wa_args_add(&a, opt(j->out.language));
        wa_args_add(&a, j->out.marketing ? "1" : "0");
        wa_args_add(&a, opt(j->out.auto_reply));
        wa_args_ll(&a, s->o->window_margin);

        r = wa_link_call(&s->link, &a);
        if (r == NULL) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            wa_log(WA_LOG_ERROR, "sender: wa_govern_1: %s",
                    r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);

            /* "Function not found" after a FUNCTION FLUSH, most likely */
            wa_link_load_functions(&s->link);
            return s->link.c->err ? -1 : 0;
        }

        /* out of the queue from here on */
        *pj = j->next;
        if (*pj == NULL) {
            s->ready_tail = pj;
        }
        j->next = NULL;
        s->nready--;

        if (strcmp(r->element[0]->str, "refuse") == 0) {
            if (job_dead(s, j, "refused", r->element[1]->str, 0) != 0) {
                freeReplyObject(r);
                job_free(j);
                return -1;
            }

            freeReplyObject(r);
            job_free(j);
            continue;
        }

        if (strcmp(r->element[0]->str, "defer") == 0) {
            if (job_defer(s, j, (long long) r->element[2]->integer * 1000,
                          r->element[1]->str) != 0)
            {
                freeReplyObject(r);
                job_free(j);
                return -1;
            }

            freeReplyObject(r);
            job_free(j);
            continue;
        }

        freeReplyObject(r);

        /* the pair limit: a recipient waits in Redis, others go on */
        wait = 0;

        if (j->out.type != WA_OUT_READ && user && s->o->pair_interval_ms) {
            wait = wa_pace_take(&s->pairs, user, now,
                             (double) s->o->pair_interval_ms,
                             (double) s->o->pair_interval_ms
                             * (s->o->pair_burst - 1));
        }

        if (wait > 0) {
            if (job_defer(s, j, wa_clock_wall_ms() + wait, "pair_limit") != 0) {
                job_free(j);
                return -1;
            }

            job_free(j);
            continue;
        }

        wa_pace_take(&s->numbers, j->out.phone_number_id, now,
                  1000.0 / s->o->rate, tolerance);

        if (job_start(s, j) != 0) {
            job_free(j);
            return -1;
        }
    }

    return 0;
}


static int
pause_check(wa_sender_t *s)
{
    wa_args_t    a;
    redisReply  *r;

    wa_args(&a, "EXISTS", s->paused_key, NULL);
    r = wa_link_call(&s->link, &a);
    if (r == NULL) {
        return -1;
    }

    if (s->paused && r->integer == 0) {
        wa_log(WA_LOG_INFO, "sender: resumed");
    }

    s->paused = r->integer != 0;
    freeReplyObject(r);

    return 0;
}


static void
drop_ready(wa_sender_t *s)
{
    job_t       *j;
    wa_args_t    a;
    redisReply  *r;

    /*
     * Still pending in the group, or leased in the deferred set: safe.  On
     * a clean stop the leases are given back, so that a restart sends
     * them at once rather than when the lease runs out.
     */
    while ((j = s->ready) != NULL) {
        s->ready = j->next;

        if (!j->pending && s->link.c && !s->link.c->err) {
            wa_args(&a, "ZADD", s->deferred, "XX", NULL);
            wa_args_ll(&a, wa_clock_wall_ms());
            wa_args_add(&a, j->id);
            r = wa_link_call(&s->link, &a);
            if (r) {
                freeReplyObject(r);
            }
        }

        job_free(j);
    }

    s->ready_tail = &s->ready;
    s->nready = 0;
}


/* counters in the log and in <prefix>:sender:<consumer> for operators */
static void
sender_stats(wa_sender_t *s)
{
    int          i;
    char         key[512];
    long long    v[7];
    wa_args_t    a;
    redisReply  *r;

    static const char  *names[] = {
        "sent", "refused", "deferred", "failed", "duplicates", "reclaimed",
        "dead"
    };

    v[0] = s->n.sent;
    v[1] = s->n.refused;
    v[2] = s->n.deferred;
    v[3] = s->n.failed;
    v[4] = s->n.duplicates;
    v[5] = s->reader.n.reclaimed;
    v[6] = s->reader.n.dead;

    wa_log(WA_LOG_INFO, "sender: sent %lld, refused %lld, deferred %lld, "
           "failed %lld, duplicates %lld, reclaimed %lld, dead %lld",
           v[0], v[1], v[2], v[3], v[4], v[5], v[6]);

    if (s->link.c == NULL || s->link.c->err) {
        return;
    }

    snprintf(key, sizeof(key), "%s:sender:%s", s->o->prefix,
             s->o->consumer);
    wa_args(&a, "HSET", key, NULL);

    for (i = 0; i < 7; i++) {
        wa_args_add(&a, names[i]);
        wa_args_ll(&a, v[i]);
    }

    r = wa_link_call(&s->link, &a);
    if (r) {
        freeReplyObject(r);
    }
}


/* what Redis holds for the sender, and what may go: -1, the link is gone */
static int
wa_sender_turn(wa_sender_t *s, long long now)
{
    long  block;

    if (now >= s->next_pause_check) {
        if (pause_check(s) != 0) {
            return -1;
        }
        s->next_pause_check = now + 1000;
    }

    if (!atomic_load(&sender_stopping) && !s->paused) {
        if (now >= s->next_claim) {
            if (reclaim_outbox(s) != 0) {
                return -1;
            }
            s->next_claim = now + s->o->claim_idle_ms / 2 + 1;
        }

        if (take_due(s) != 0) {
            return -1;
        }

        /* block on Redis only when there is nothing else to do */
        block = s->nready || s->inflight ? 0 : 100;

        if (read_outbox(s, block) != 0 || dispatch(s) != 0) {
            return -1;
        }
    }

    if (now >= s->next_trim) {
        if (wa_trim_stream(&s->reader, 0, WA_STREAM_OUTBOX) != 0) {
            return -1;
        }
        s->next_trim = now + s->o->trim_interval_ms;
    }

    if (now >= s->next_stats) {
        sender_stats(s);
        s->next_stats = now + s->o->stats_interval_ms;
    }

    return 0;
}


/* the transfers in flight, and a wait for what comes next */
static int
wa_sender_transfers(wa_sender_t *s)
{
    int  still;

    if (s->inflight) {
        curl_multi_perform(s->multi, &still);

        if (collect(s) != 0) {
            return -1;
        }
    }

    /* the last transfer done: the outbox, not curl, is what to wait on */
    if (s->inflight) {
        curl_multi_poll(s->multi, NULL, 0, s->nready ? 1 : 20, NULL);
        curl_multi_perform(s->multi, &still);

        return collect(s);
    }

    if (s->paused) {
        wa_clock_sleep_ms(100);

    } else if (s->nready) {
        /* only pacing holds the queue: wait for the next slot */
        struct timespec  ts = { 0, 500000 };
        nanosleep(&ts, NULL);
    }

    return 0;
}


static void *
sender_main(void *arg)
{
    wa_sender_t  *s = arg;

    while (!atomic_load(&sender_stopping) || s->inflight) {

        if (s->link.c == NULL) {
            if (wa_link_connect(&s->link, &sender_stopping) != 0) {
                if (atomic_load(&sender_stopping)) {
                    /* what is in flight cannot be recorded: it is retried */
                    break;
                }

                continue;
            }

            if (wa_reader_groups(&s->reader) != 0) {
                wa_link_lost(&s->link);
                continue;
            }

            s->next_claim = 0;
        }

        if (wa_sender_turn(s, wa_clock_ms()) != 0
            || wa_sender_transfers(s) != 0)
        {
            drop_ready(s);
            wa_link_lost(&s->link);
        }
    }

    drop_ready(s);
    sender_stats(s);
    wa_link_close(&s->link);

    wa_log(WA_LOG_INFO, "sender: stopped, sent %lld, refused %lld, failed "
           "%lld", s->n.sent, s->n.refused, s->n.failed);

    return NULL;
}


int
wa_sender_start(const wa_options_t *o)
{
    wa_sender_t  *s;

    if (o->token == NULL) {
        return 0;
    }

    s = calloc(1, sizeof(wa_sender_t));
    if (s == NULL) {
        return -1;
    }

    s->o = o;
    s->ready_tail = &s->ready;
    snprintf(s->outbox, sizeof(s->outbox), "%s:%s", o->prefix,
             WA_STREAM_OUTBOX);
    snprintf(s->deferred, sizeof(s->deferred), "%s:deferred", o->prefix);
    snprintf(s->entries, sizeof(s->entries), "%s:deferred:entries",
             o->prefix);
    snprintf(s->sent, sizeof(s->sent), "%s:sent", o->prefix);
    snprintf(s->dead, sizeof(s->dead), "%s:%s", o->prefix, WA_STREAM_DEAD);
    snprintf(s->alerts, sizeof(s->alerts), "%s:alerts", o->prefix);
    snprintf(s->paused_key, sizeof(s->paused_key), "%s:sender:paused",
             o->prefix);

    wa_link_init(&s->link, o, "sender: ");
    wa_reader_init(&s->reader, &s->link, s->dead);
    wa_reader_add(&s->reader, s->outbox);
    s->next_stats = wa_clock_ms() + o->stats_interval_ms;
    snprintf(s->auth, sizeof(s->auth), "Authorization: Bearer %s", o->token);

    s->multi = curl_multi_init();
    if (s->multi == NULL || wa_pace_init(&s->numbers, 64) != 0
        || wa_pace_init(&s->pairs, 65536) != 0)
    {
        return -1;
    }

    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);

    if (pthread_create(&wa_sender_thread, NULL, sender_main, s) != 0) {
        return -1;
    }

    sender_running = 1;
    wa_log(WA_LOG_INFO, "sender: on, %s/%s, %ld messages/s per number",
            o->graph_url, o->graph_version, o->rate);

    return 0;
}


void
wa_sender_stop(void)
{
    if (!sender_running) {
        return;
    }

    /* requests in flight are finished, nothing new is taken */
    atomic_store(&sender_stopping, 1);
    pthread_join(wa_sender_thread, NULL);
    sender_running = 0;
}
