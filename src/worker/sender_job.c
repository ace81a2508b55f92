/*
 * wa-relayd: a sender's job: the Graph API request that libcurl runs
 * (http.c), the verdict on Meta's answer, and what is recorded of it in
 * Redis (wa:sent, wa:dead; wa:deferred through sender_deferred.c), each
 * in one MULTI with the entry leaving its place.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "counters.h"
#include "log.h"
#include "sender.h"


void
wa_job_free(wa_job_t *j)
{
    if (j->easy) {
        curl_easy_cleanup(j->easy);
    }

    curl_slist_free_all(j->headers);
    free(j->request);
    wa_answer_free(&j->response);
    wa_outbox_free(&j->out);
    json_decref(j->fields);
    free(j);
}

/* the entry's fields as the parser wants them; -1 and why if it cannot */
int
wa_job_parse(wa_job_t *j, const char **err)
{
    size_t       n, lens[WA_MAX_FIELDS];
    json_t      *v;
    const char  *key, *names[WA_MAX_FIELDS], *values[WA_MAX_FIELDS];

    n = 0;

    json_object_foreach(j->fields, key, v) {
        if (n == WA_MAX_FIELDS) {
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

int
wa_job_dead(wa_sender_t *s, wa_job_t *j, const char *outcome, const char *why,
    long code)
{
    int        n, refused;
    char      *dump, key[512];
    wa_args_t  a;

    wa_reach_end(s, j, 0);

    dump = json_dumps(j->fields, JSON_COMPACT);
    if (dump == NULL) {
        return -1;
    }

    wa_sender_multi(s);
    wa_args(&a, "XADD", s->dead, "*", WA_FIELD_V, WA_EVENTS_V, "stream",
            s->outbox, "id", j->id, "outcome", outcome, "reason", why,
            "code", NULL);
    wa_args_ll(&a, code);
    wa_args_add(&a, "entry");
    wa_args_add(&a, dump);
    wa_sender_queue(s, &a);
    n = 2 + wa_deferred_leave(s, j);     /* MULTI, XADD */

    if (j->out.idempotency_key) {
        /* not sent: the caller may try again with the same key */
        wa_sender_idem_key(s, j->out.idempotency_key, key, sizeof(key));
        wa_args(&a, "DEL", key, NULL);
        wa_sender_queue(s, &a);
        n++;
    }

    free(dump);

    refused = strcmp(outcome, "refused") == 0;
    wa_log(refused ? WA_LOG_INFO : WA_LOG_ERROR, "sender: %s %s: %s", j->id,
           outcome, why);

    wa_sender_count(outcome, why);

    if (refused) {
        s->n.refused++;

    } else {
        s->n.failed++;
    }

    return wa_sender_exec(s, n);
}

static int
job_sent(wa_sender_t *s, wa_job_t *j, const wa_graph_result_t *res)
{
    int          n;
    char         key[512];
    wa_args_t    a;
    long long    now;
    const char  *user;

    now = wa_clock_ms();
    user = wa_outbox_user(&j->out);

    wa_reach_end(s, j, 1);

    wa_sender_multi(s);
    wa_args(&a, "XADD", s->sent, "*", WA_FIELD_V, WA_EVENTS_V, "outbox_id",
            j->id, "wamid", res->wamid, "phone_number_id",
            j->out.phone_number_id, "to", wa_opt(user), "attempts", NULL);
    wa_args_ll(&a, j->attempts + 1);
    wa_args_add(&a, "latency_ms");
    wa_args_ll(&a, now - j->started_ms);
    wa_args_add(&a, "auto_reply");
    wa_args_add(&a, wa_opt(j->out.auto_reply));
    wa_sender_queue(s, &a);
    n = 2 + wa_deferred_leave(s, j);     /* MULTI, XADD */

    if (res->wamid[0] && j->out.type != WA_OUT_READ) {
        wa_args(&a, "FCALL", "wa_sent_1", "0", s->part->prefix, res->wamid,
                j->out.phone_number_id, wa_opt(user), NULL);
        wa_args_ll(&a, (long long) time(NULL));
        wa_args_add(&a, wa_opt(j->out.template_name));
        wa_args_add(&a, wa_opt(j->out.language));
        wa_args_add(&a, wa_opt(j->out.variant));
        wa_sender_queue(s, &a);
        n++;
    }

    if (j->out.idempotency_key) {
        wa_sender_idem_key(s, j->out.idempotency_key, key, sizeof(key));
        wa_args(&a, "SET", key, res->wamid, "EX", NULL);
        wa_args_ll(&a, WA_IDEM_TTL);
        wa_sender_queue(s, &a);
        n++;
    }

    s->n.sent++;
    wa_sender_count("sent", "");

    return wa_sender_exec(s, n);
}


int
wa_job_start(wa_sender_t *s, wa_job_t *j)
{
    char  url[1024], callback[128];

    snprintf(callback, sizeof(callback), "wa:%s", j->id);
    j->request = wa_outbox_request(&j->out, callback);

    snprintf(url, sizeof(url), "%s/%s/%s/messages", s->o->graph_url,
             s->o->graph_version, j->out.phone_number_id);

    j->easy = wa_http_request(&s->http, url, "Content-Type: application/json",
                              &j->headers, j);

    if (j->request == NULL || j->easy == NULL) {
        wa_log(WA_LOG_ERROR, "sender: out of memory");
        return -1;
    }

    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->request);
    j->response.max = 1024 * 1024;
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, wa_answer_write);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, &j->response);
    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, s->o->request_timeout_ms);

    /* on its way now, at the moment its pace gave it */
    if (wa_http_add(&s->http, j->easy) != 0) {
        return -1;
    }

    j->started_ms = wa_clock_ms();
    wa_counters_observe(WA_HIST_PACING, (j->started_ms - j->ready_ms) * 1000);

    return 0;
}

static int
job_done(wa_sender_t *s, wa_job_t *j, long status, CURLcode cc)
{
    char               code[32];
    long long          wait;
    wa_args_t          a;
    wa_graph_result_t  res;

    if (cc != CURLE_OK) {
        status = 0;
    }

    wa_graph_result(&res, status, j->response.data, j->response.len,
                    curl_easy_strerror(cc));
    wa_counters_observe(WA_HIST_GRAPH,
                       (wa_clock_ms() - j->started_ms) * 1000);

    if (res.verdict != WA_SENT) {
        if (res.code) {
            snprintf(code, sizeof(code), "%ld", res.code);

        } else if (status) {
            snprintf(code, sizeof(code), "http_%ld", status);

        } else {
            snprintf(code, sizeof(code), "no_answer");
        }

        wa_counters_add(WA_FAM_GRAPH_ERRORS, code, NULL, 1);
    }

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
        wa_sender_multi(s);
        wa_args(&a, "SET", s->paused_key, res.reason, NULL);
        wa_sender_queue(s, &a);
        wa_args(&a, "XADD", s->alerts, "*", WA_FIELD_V, WA_EVENTS_V,
                "severity", "critical", "kind", "sender", "subject", "token",
                "message",
                "the Graph API refused the access token: sending paused "
                "until the token is fixed and <prefix>:sender:paused "
                "deleted", NULL);
        wa_sender_queue(s, &a);

        if (wa_sender_exec(s, 3) != 0) {
            return -1;
        }

        wa_log(WA_LOG_ERROR, "sender: the Graph API refused the token (%s): "
                "sending paused", res.reason);

        return wa_job_defer(s, j, wa_clock_wall_ms() + 1000, res.reason);

    case WA_GIVE_UP:
        return wa_job_dead(s, j, "failed", res.reason, res.code);

    default:
        if (j->attempts >= s->o->max_attempts) {
            return wa_job_dead(s, j, "failed", res.reason, res.code);
        }

        wait = wa_graph_backoff(res.verdict, s->o->retry_base_ms,
                                j->attempts);

        if (res.verdict == WA_RETRY_NUMBER) {
            wa_pace_hold(&s->numbers, j->out.phone_number_id,
                         wa_clock_ms() + wait);

            if (wa_sender_hold(s, j->out.phone_number_id, wait) != 0) {
                return -1;
            }
        }

        return wa_job_defer(s, j, wa_clock_wall_ms() + wait, res.reason);
    }
}

int
wa_job_ended(void *data, void *req, long status, CURLcode cc, int ok)
{
    int        rc;
    wa_job_t  *j = req;

    rc = ok ? job_done(data, j, status, cc) : 0;
    wa_job_free(j);

    return rc;
}


/* a new job in the ready queue, from a stream entry or a deferred one */
int
wa_job_add(wa_sender_t *s, const char *id, json_t *fields, int pending)
{
    wa_job_t    *j;
    const char  *err, *v;

    j = calloc(1, sizeof(wa_job_t));
    if (j == NULL) {
        json_decref(fields);
        return -1;
    }

    snprintf(j->id, sizeof(j->id), "%s", id);
    j->fields = fields;
    j->pending = pending;
    v = json_string_value(json_object_get(fields, "_attempts"));
    j->attempts = v ? atol(v) : 0;

    if (wa_job_parse(j, &err) != 0) {
        if (wa_job_dead(s, j, "invalid", err, 0) != 0) {
            wa_job_free(j);
            return -1;
        }

        wa_job_free(j);
        return 0;
    }

    j->ready_ms = wa_clock_ms();
    *s->ready_tail = j;
    s->ready_tail = &j->next;
    s->nready++;

    return 0;
}
