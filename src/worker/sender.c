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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "conn.h"
#include "log.h"
#include "pace.h"
#include "wa_graph.h"
#include "wa_outbox.h"
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


typedef struct {
    const options_t     *o;
    worker_t             w;             /* connection, names, counters */
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
    char                 auth[1024];
    pace_t               numbers;
    pace_t               pairs;
} sender_t;


static pthread_t              sender_thread;
static volatile sig_atomic_t  sender_stopping;
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
exec_replies(sender_t *s, int n)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < n; i++) {
        if (redisGetReply(s->w.c, (void **) &r) != REDIS_OK) {
            log_msg(LOG_ERROR, "sender: Redis: %s", s->w.c->errstr);
            return -1;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            /* a runtime error inside the MULTI: Redis ran the others */
            log_msg(LOG_ERROR, "sender: Redis: %s", r->str);
        }

        freeReplyObject(r);
    }

    return 0;
}


/* the entry leaves its current place: the group, or the deferred set */
static int
job_release(sender_t *s, job_t *j)
{
    if (j->pending) {
        redisAppendCommand(s->w.c, "XACK %s %s %s", s->outbox, s->o->group,
                           j->id);

    } else {
        redisAppendCommand(s->w.c, "ZREM %s %s", s->deferred, j->id);
    }

    redisAppendCommand(s->w.c, "HDEL %s %s", s->entries, j->id);

    return 2;
}


static int
job_defer(sender_t *s, job_t *j, long long due_ms, const char *why)
{
    int    n;
    char  *dump;

    dump = job_dump(j, why);
    if (dump == NULL) {
        return -1;
    }

    redisAppendCommand(s->w.c, "MULTI");
    redisAppendCommand(s->w.c, "HSET %s %s %s", s->entries, j->id, dump);
    redisAppendCommand(s->w.c, "ZADD %s %lld %s", s->deferred, due_ms,
                       j->id);
    n = 3;

    if (j->pending) {
        redisAppendCommand(s->w.c, "XACK %s %s %s", s->outbox, s->o->group,
                           j->id);
        n++;
    }

    redisAppendCommand(s->w.c, "EXEC");
    free(dump);

    log_msg(LOG_DEBUG, "sender: %s deferred %lld ms: %s", j->id,
            due_ms - now_wall_ms(), why);

    return exec_replies(s, n + 1);
}


static int
job_dead(sender_t *s, job_t *j, const char *outcome, const char *why,
    long code)
{
    int    n;
    char  *dump;

    dump = json_dumps(j->fields, JSON_COMPACT);
    if (dump == NULL) {
        return -1;
    }

    redisAppendCommand(s->w.c, "MULTI");
    redisAppendCommand(s->w.c, "XADD %s * stream %s id %s outcome %s "
                       "reason %s code %ld entry %s", s->w.dead, s->outbox,
                       j->id, outcome, why, code, dump);
    n = 2 + job_release(s, j);

    if (j->out.idempotency_key) {
        /* not sent: the caller may try again with the same key */
        redisAppendCommand(s->w.c, "DEL %s:idem:%s", s->o->prefix,
                           j->out.idempotency_key);
        n++;
    }

    redisAppendCommand(s->w.c, "EXEC");
    free(dump);

    log_msg(strcmp(outcome, "refused") == 0 ? LOG_INFO : LOG_ERROR,
            "sender: %s %s: %s", j->id, outcome, why);
    s->w.n.dead++;

    return exec_replies(s, n + 1);
}


static int
job_sent(sender_t *s, job_t *j, const wa_graph_result_t *res)
{
    int          n;
    long long    now;
    const char  *user;

    now = now_ms();
    user = wa_outbox_user(&j->out);

    redisAppendCommand(s->w.c, "MULTI");
    redisAppendCommand(s->w.c, "XADD %s * outbox_id %s wamid %s "
                       "phone_number_id %s to %s attempts %ld "
                       "latency_ms %lld auto_reply %s",
                       s->sent, j->id, res->wamid, j->out.phone_number_id,
                       user ? user : "", j->attempts + 1,
                       now - j->started_ms,
                       j->out.auto_reply ? j->out.auto_reply : "");
    n = 2 + job_release(s, j);

    if (res->wamid[0] && j->out.type != WA_OUT_READ) {
        redisAppendCommand(s->w.c, "FCALL wa_sent_1 0 %s %s %s %s %lld %s %s "
                           "%s", s->o->prefix, res->wamid,
                           j->out.phone_number_id, user ? user : "",
                           (long long) time(NULL),
                           j->out.template_name ? j->out.template_name : "",
                           j->out.language ? j->out.language : "",
                           j->out.variant ? j->out.variant : "");
        n++;
    }

    if (j->out.idempotency_key) {
        redisAppendCommand(s->w.c, "SET %s:idem:%s %s EX %d", s->o->prefix,
                           j->out.idempotency_key, res->wamid, IDEM_TTL);
        n++;
    }

    redisAppendCommand(s->w.c, "EXEC");
    s->w.n.applied++;

    return exec_replies(s, n + 1);
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
job_start(sender_t *s, job_t *j)
{
    char  url[1024], callback[128];

    snprintf(callback, sizeof(callback), "wa:%s", j->id);
    j->request = wa_outbox_request(&j->out, callback);

    j->easy = curl_easy_init();
    if (j->request == NULL || j->easy == NULL) {
        log_msg(LOG_ERROR, "sender: out of memory");
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

    j->started_ms = now_ms();
    s->inflight++;

    return 0;
}


/* how long before a retry: doubling, 4^n for the pair limit */
static long long
backoff(sender_t *s, job_t *j, wa_verdict_t v)
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
job_done(sender_t *s, job_t *j, CURLcode cc)
{
    long               status;
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

    log_msg(LOG_WARN, "sender: %s attempt %ld: %s (%s)", j->id, j->attempts,
            res.reason, wa_verdict_name(res.verdict));

    switch (res.verdict) {

    case WA_TOKEN:
        /* the entry waits; nothing goes until an operator fixes the token */
        s->paused = 1;
        redisAppendCommand(s->w.c, "MULTI");
        redisAppendCommand(s->w.c, "SET %s:sender:paused %s", s->o->prefix,
                           res.reason);
        redisAppendCommand(s->w.c, "XADD %s:alerts * severity critical kind "
                           "sender subject token message %s", s->o->prefix,
                           "the Graph API refused the access token: sending "
                           "paused until the token is fixed and "
                           "<prefix>:sender:paused deleted");
        redisAppendCommand(s->w.c, "EXEC");

        if (exec_replies(s, 4) != 0) {
            return -1;
        }

        log_msg(LOG_ERROR, "sender: the Graph API refused the token (%s): "
                "sending paused", res.reason);

        return job_defer(s, j, now_wall_ms() + 1000, res.reason);

    case WA_GIVE_UP:
        return job_dead(s, j, "failed", res.reason, res.code);

    default:
        if (j->attempts >= s->o->max_attempts) {
            return job_dead(s, j, "failed", res.reason, res.code);
        }

        if (res.verdict == WA_RETRY_NUMBER) {
            pace_hold(&s->numbers, j->out.phone_number_id,
                      now_ms() + backoff(s, j, res.verdict));
        }

        return job_defer(s, j, now_wall_ms() + backoff(s, j, res.verdict),
                         res.reason);
    }
}


static int
collect(sender_t *s)
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
job_add(sender_t *s, const char *id, json_t *fields, int pending)
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

    j->ready_ms = now_ms();
    *s->ready_tail = j;
    s->ready_tail = &j->next;
    s->nready++;

    return 0;
}


/* an idempotency key seen before: the entry is answered, not sent again */
static int
seen_before(sender_t *s, const char *id, json_t *fields)
{
    int          dup;
    const char  *key;
    redisReply  *r;

    key = json_string_value(json_object_get(fields, "idempotency_key"));
    if (key == NULL || key[0] == '\0') {
        return 0;
    }

    r = redisCommand(s->w.c, "SET %s:idem:%s %s NX EX %d GET", s->o->prefix,
                     key, id, IDEM_TTL);
    if (r == NULL) {
        return -1;
    }

    dup = r->type == REDIS_REPLY_STRING;

    if (dup) {
        log_msg(LOG_INFO, "sender: %s: idempotency key %s already used by "
                "%s, not sent again", id, key, r->str);

        redisAppendCommand(s->w.c, "MULTI");
        redisAppendCommand(s->w.c, "XADD %s * outbox_id %s duplicate_of %s",
                           s->sent, id, r->str);
        redisAppendCommand(s->w.c, "XACK %s %s %s", s->outbox, s->o->group,
                           id);
        redisAppendCommand(s->w.c, "EXEC");
        freeReplyObject(r);

        return exec_replies(s, 4) == 0 ? 1 : -1;
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


static int
take_entries(sender_t *s, redisReply *entries)
{
    int          rc;
    size_t       i;
    json_t      *f;
    redisReply  *e;

    for (i = 0; i < entries->elements; i++) {
        e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
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
read_outbox(sender_t *s, long block_ms)
{
    int          rc;
    long         room;
    redisReply  *r;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    if (block_ms > 0) {
        r = redisCommand(s->w.c, "XREADGROUP GROUP %s %s COUNT %ld BLOCK %ld "
                         "STREAMS %s >", s->o->group, s->o->consumer, room,
                         block_ms, s->outbox);
    } else {
        r = redisCommand(s->w.c, "XREADGROUP GROUP %s %s COUNT %ld "
                         "STREAMS %s >", s->o->group, s->o->consumer, room,
                         s->outbox);
    }

    if (r == NULL) {
        log_msg(LOG_ERROR, "sender: Redis XREADGROUP: %s", s->w.c->errstr);
        return -1;
    }

    rc = 0;

    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            freeReplyObject(r);
            r = redisCommand(s->w.c, "XGROUP CREATE %s %s 0 MKSTREAM",
                             s->outbox, s->o->group);
            log_msg(LOG_WARN, "sender: created group %s on %s again",
                    s->o->group, s->outbox);
        } else {
            log_msg(LOG_ERROR, "sender: XREADGROUP: %s", r->str);
        }

    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        rc = take_entries(s, r->element[0]->element[1]);
    }

    if (r) {
        freeReplyObject(r);
    }

    return rc;
}


/* entries a dead sender held: taken over once idle */
static int
reclaim_outbox(sender_t *s)
{
    int          rc;
    redisReply  *r;

    r = redisCommand(s->w.c, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT %ld",
                     s->outbox, s->o->group, s->o->consumer,
                     s->o->claim_idle_ms, s->o->max_inflight);
    if (r == NULL) {
        return -1;
    }

    rc = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2
        && r->element[1]->elements)
    {
        log_msg(LOG_WARN, "sender: reclaimed %zu outbox entries",
                r->element[1]->elements);
        rc = take_entries(s, r->element[1]);
    }

    freeReplyObject(r);

    return rc;
}


/* deferred entries now due: claimed with a lease, then into the queue */
static int
take_due(sender_t *s)
{
    size_t        i;
    long          room;
    json_t       *f;
    redisReply   *r, *e;
    json_error_t  jerr;

    room = 2 * s->o->max_inflight - s->nready;
    if (room <= 0) {
        return 0;
    }

    r = redisCommand(s->w.c, "ZRANGEBYSCORE %s -inf %lld LIMIT 0 %ld",
                     s->deferred, now_wall_ms(), room);
    if (r == NULL) {
        return -1;
    }

    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        e = redisCommand(s->w.c, "HGET %s %s", s->entries,
                         r->element[i]->str);
        if (e == NULL) {
            freeReplyObject(r);
            return -1;
        }

        if (e->type != REDIS_REPLY_STRING) {
            /* its fields are gone: nothing to send */
            freeReplyObject(e);
            e = redisCommand(s->w.c, "ZREM %s %s", s->deferred,
                             r->element[i]->str);
            if (e) {
                freeReplyObject(e);
            }
            continue;
        }

        f = json_loadb(e->str, e->len, 0, &jerr);
        freeReplyObject(e);

        /* a lease: if this sender dies, the entry comes due again */
        e = redisCommand(s->w.c, "ZADD %s XX %lld %s", s->deferred,
                         now_wall_ms() + LEASE_MS, r->element[i]->str);
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
dispatch(sender_t *s)
{
    job_t       **pj, *j;
    double        tolerance;
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

        now = now_ms();

        /*
         * the number's rate: wait here, others' numbers go on.  A loop
         * that comes late (a Redis round trip, a poll) may catch up: the
         * tolerance is half an interval, or 5 ms at high rates, which
         * keeps any second within about 1% of the rate.
         */
        if (pace_wait(&s->numbers, j->out.phone_number_id, now,
                      tolerance) > 0)
        {
            pj = &j->next;
            continue;
        }

        user = wa_outbox_user(&j->out);
        type = j->out.type == WA_OUT_READ ? "read"
               : j->out.type == WA_OUT_TEMPLATE ? "template" : "message";

        r = redisCommand(s->w.c, "FCALL wa_govern_1 0 %s %lld %s %s %s %s "
                         "%s %s %s %ld", s->o->prefix,
                         (long long) time(NULL), j->out.phone_number_id,
                         user ? user : "", type,
                         j->out.template_name ? j->out.template_name : "",
                         j->out.language ? j->out.language : "",
                         j->out.marketing ? "1" : "0",
                         j->out.auto_reply ? j->out.auto_reply : "",
                         s->o->window_margin);
        if (r == NULL) {
            log_msg(LOG_ERROR, "sender: Redis FCALL wa_govern_1: %s",
                    s->w.c->errstr);
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            log_msg(LOG_ERROR, "sender: wa_govern_1: %s",
                    r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);

            /* "Function not found" after a FUNCTION FLUSH, most likely */
            conn_load_functions(s->w.c);
            return s->w.c->err ? -1 : 0;
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
            wait = pace_take(&s->pairs, user, now,
                             (double) s->o->pair_interval_ms,
                             (double) s->o->pair_interval_ms
                             * (s->o->pair_burst - 1));
        }

        if (wait > 0) {
            if (job_defer(s, j, now_wall_ms() + wait, "pair_limit") != 0) {
                job_free(j);
                return -1;
            }

            job_free(j);
            continue;
        }

        pace_take(&s->numbers, j->out.phone_number_id, now,
                  1000.0 / s->o->rate, tolerance);

        if (job_start(s, j) != 0) {
            job_free(j);
            return -1;
        }
    }

    return 0;
}


static int
pause_check(sender_t *s)
{
    redisReply  *r;

    r = redisCommand(s->w.c, "EXISTS %s:sender:paused", s->o->prefix);
    if (r == NULL) {
        return -1;
    }

    if (s->paused && r->integer == 0) {
        log_msg(LOG_INFO, "sender: resumed");
    }

    s->paused = r->integer != 0;
    freeReplyObject(r);

    return 0;
}


static void
drop_ready(sender_t *s)
{
    job_t       *j;
    redisReply  *r;

    /*
     * Still pending in the group, or leased in the deferred set: safe.  On
     * a clean stop the leases are given back, so that a restart sends
     * them at once rather than when the lease runs out.
     */
    while ((j = s->ready) != NULL) {
        s->ready = j->next;

        if (!j->pending && s->w.c && !s->w.c->err) {
            r = redisCommand(s->w.c, "ZADD %s XX %lld %s", s->deferred,
                             now_wall_ms(), j->id);
            if (r) {
                freeReplyObject(r);
            }
        }

        job_free(j);
    }

    s->ready_tail = &s->ready;
    s->nready = 0;
}


static void *
sender_main(void *arg)
{
    int        still;
    long         block;
    sender_t    *s = arg;
    long long    now;
    redisReply  *r;

    while (!sender_stopping || s->inflight) {

        if (s->w.c == NULL) {
            s->w.c = conn_open(s->o);

            if (s->w.c == NULL) {
                struct timespec  ts = { 1, 0 };
                nanosleep(&ts, NULL);
                continue;
            }

            r = redisCommand(s->w.c, "XGROUP CREATE %s %s 0 MKSTREAM",
                             s->outbox, s->o->group);
            if (r) {
                freeReplyObject(r);
            }

            s->next_claim = 0;
        }

        now = now_ms();

        if (now >= s->next_pause_check) {
            if (pause_check(s) != 0) {
                goto lost;
            }
            s->next_pause_check = now + 1000;
        }

        if (!sender_stopping && !s->paused) {
            if (now >= s->next_claim) {
                if (reclaim_outbox(s) != 0) {
                    goto lost;
                }
                s->next_claim = now + s->o->claim_idle_ms / 2 + 1;
            }

            if (take_due(s) != 0) {
                goto lost;
            }

            /* block on Redis only when there is nothing else to do */
            block = s->nready || s->inflight ? 0 : 100;

            if (read_outbox(s, block) != 0) {
                goto lost;
            }

            if (dispatch(s) != 0) {
                goto lost;
            }

        } else if (s->paused && !s->inflight) {
            struct timespec  ts = { 0, 100000000 };
            nanosleep(&ts, NULL);
        }

        if (now >= s->next_trim) {
            if (trim_one(&s->w, s->outbox, "outbox") != 0) {
                goto lost;
            }
            s->next_trim = now + s->o->trim_interval_ms;
        }

        if (s->inflight) {
            curl_multi_perform(s->multi, &still);

            if (collect(s) != 0) {
                goto lost;
            }
        }

        /* the last transfer done: the outbox, not curl, is what to wait on */
        if (s->inflight) {
            curl_multi_poll(s->multi, NULL, 0, s->nready ? 1 : 20, NULL);
            curl_multi_perform(s->multi, &still);

            if (collect(s) != 0) {
                goto lost;
            }

        } else if (s->nready) {
            /* only pacing holds the queue: wait for the next slot */
            struct timespec  ts = { 0, 500000 };
            nanosleep(&ts, NULL);
        }

        continue;

    lost:

        log_msg(LOG_ERROR, "sender: lost the Redis connection; reconnecting");
        drop_ready(s);
        redisFree(s->w.c);
        s->w.c = NULL;
    }

    drop_ready(s);

    if (s->w.c) {
        redisFree(s->w.c);
    }

    log_msg(LOG_INFO, "sender: stopped, sent %lld, dead %lld",
            s->w.n.applied, s->w.n.dead);

    return NULL;
}


int
sender_start(const options_t *o)
{
    sender_t  *s;

    if (o->token == NULL) {
        return 0;
    }

    s = calloc(1, sizeof(sender_t));
    if (s == NULL) {
        return -1;
    }

    s->o = o;
    s->w.o = o;
    s->ready_tail = &s->ready;
    snprintf(s->outbox, sizeof(s->outbox), "%s:outbox", o->prefix);
    snprintf(s->deferred, sizeof(s->deferred), "%s:deferred", o->prefix);
    snprintf(s->entries, sizeof(s->entries), "%s:deferred:entries",
             o->prefix);
    snprintf(s->sent, sizeof(s->sent), "%s:sent", o->prefix);
    snprintf(s->w.dead, sizeof(s->w.dead), "%s:dead", o->prefix);
    snprintf(s->auth, sizeof(s->auth), "Authorization: Bearer %s", o->token);

    s->multi = curl_multi_init();
    if (s->multi == NULL || pace_init(&s->numbers, 64) != 0
        || pace_init(&s->pairs, 65536) != 0)
    {
        return -1;
    }

    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);

    if (pthread_create(&sender_thread, NULL, sender_main, s) != 0) {
        return -1;
    }

    sender_running = 1;
    log_msg(LOG_INFO, "sender: on, %s/%s, %ld messages/s per number",
            o->graph_url, o->graph_version, o->rate);

    return 0;
}


void
sender_stop(void)
{
    if (!sender_running) {
        return;
    }

    /* requests in flight are finished, nothing new is taken */
    sender_stopping = 1;
    pthread_join(sender_thread, NULL);
    sender_running = 0;
}
