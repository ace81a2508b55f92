/*
 * wa-relay: Graph API answers.  Decide on Meta's error code, never on the
 * text, and on the HTTP status only when there is no code (docs/outbox.md,
 * "Errors and retries").
 */

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "wa_graph.h"


static wa_verdict_t
wa_classify(long code)
{
    switch (code) {

    case 0:
    case 190:
        return WA_TOKEN;

    case 1:
    case 2:
    case 4:
    case 80007:
    case 131000:
    case 131016:
    case 133004:
        return WA_RETRY;

    case 130429:
        return WA_RETRY_NUMBER;

    case 131056:
        return WA_RETRY_RECIPIENT;

    case 131057:
        return WA_RETRY_LATER;

    default:
        return WA_GIVE_UP;
    }
}


void
wa_graph_result(wa_graph_result_t *res, long http_status, const char *body,
    size_t len, const char *err)
{
    json_t        *root, *e, *id, *code;
    const char    *msg;
    json_error_t   jerr;

    memset(res, 0, sizeof(*res));
    res->http_status = http_status;

    if (http_status == 0) {
        res->verdict = WA_RETRY;
        snprintf(res->reason, sizeof(res->reason), "no answer: %s",
                 err ? err : "unknown");
        return;
    }

    root = body ? json_loadb(body, len, 0, &jerr) : NULL;

    if (http_status >= 200 && http_status < 300) {
        id = json_object_get(json_array_get(json_object_get(root,
                                                            "messages"), 0),
                             "id");

        if (json_is_string(id)) {
            res->verdict = WA_SENT;
            snprintf(res->wamid, sizeof(res->wamid), "%s",
                     json_string_value(id));

        } else if (json_is_true(json_object_get(root, "success"))) {
            /* mark-as-read answers {"success":true} */
            res->verdict = WA_SENT;

        } else {
            /* accepted or not? a retry could send twice: give up loudly */
            res->verdict = WA_GIVE_UP;
            snprintf(res->reason, sizeof(res->reason),
                     "HTTP %ld without a message id", http_status);
        }

        json_decref(root);
        return;
    }

    e = json_object_get(root, "error");
    code = json_object_get(e, "code");
    msg = json_string_value(json_object_get(e, "message"));

    if (json_is_integer(code)) {
        res->code = (long) json_integer_value(code);
        res->verdict = wa_classify(res->code);
        snprintf(res->reason, sizeof(res->reason), "%ld %s", res->code,
                 msg ? msg : "");

    } else {
        res->verdict = http_status >= 500 || http_status == 429
                       ? WA_RETRY : WA_GIVE_UP;
        snprintf(res->reason, sizeof(res->reason), "HTTP %ld", http_status);
    }

    json_decref(root);
}


const char *
wa_verdict_name(wa_verdict_t v)
{
    static const char  *names[] = {
        "sent", "retry", "retry_number", "retry_recipient", "retry_later",
        "give_up", "token"
    };

    return names[v];
}


long long
wa_graph_backoff(wa_verdict_t v, long long base, long attempts)
{
    int        factor;
    long       n;
    long long  d, cap;

    if (v == WA_RETRY_LATER) {
        return 60 * base;
    }

    factor = v == WA_RETRY_RECIPIENT ? 4 : 2;
    cap = v == WA_RETRY_RECIPIENT ? 3600000 : 600000;

    for (d = base, n = attempts < 20 ? attempts : 20; n > 1 && d < cap; n--)
    {
        d *= factor;
    }

    return d;
}
