/* outbox entries and Graph API answers */

#include <string.h>
#include <stdlib.h>

#include "unit.h"
#include "wa_graph.h"
#include "wa_outbox.h"


static int
parse(wa_outbox_t *o, const char *pn, const char *to, const char *message,
    const char **err)
{
    const char  *names[3], *values[3];
    size_t       lens[3], n;

    n = 0;
    if (pn) { names[n] = "phone_number_id"; values[n++] = pn; }
    if (to) { names[n] = "to"; values[n++] = to; }
    if (message) { names[n] = "message"; values[n++] = message; }

    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(values[i]);
    }

    return wa_outbox_parse(o, names, values, lens, n, err);
}


START_TEST(entries)
{
    char         *req, big[5000 + 64];
    const char   *err;
    wa_outbox_t   o;

    ck_assert_int_eq(parse(&o, "1", "55", "{\"type\":\"text\",\"text\":"
                           "{\"body\":\"hi\"}}", &err), 0);
    ck_assert_int_eq(o.type, WA_OUT_MESSAGE);
    req = wa_outbox_request(&o, "wa:1-0");
    ck_assert_ptr_nonnull(strstr(req, "\"messaging_product\":\"whatsapp\""));
    ck_assert_ptr_nonnull(strstr(req, "\"to\":\"55\""));
    ck_assert_ptr_nonnull(strstr(req, "\"biz_opaque_callback_data\":"
                                      "\"wa:1-0\""));
    free(req);
    wa_outbox_free(&o);

    ck_assert_int_eq(parse(&o, "1", "55", "{\"type\":\"template\","
                           "\"template\":{\"name\":\"t\",\"language\":"
                           "{\"code\":\"pt_BR\"}}}", &err), 0);
    ck_assert_int_eq(o.type, WA_OUT_TEMPLATE);
    ck_assert_str_eq(o.template_name, "t");
    ck_assert_str_eq(o.language, "pt_BR");
    wa_outbox_free(&o);

    ck_assert_int_eq(parse(&o, "1", NULL, "{\"status\":\"read\","
                           "\"message_id\":\"wamid.x\"}", &err), 0);
    ck_assert_int_eq(o.type, WA_OUT_READ);
    wa_outbox_free(&o);

    ck_assert_int_eq(parse(&o, "1/../../v1/me", "55", "{\"type\":\"text\","
                           "\"text\":{\"body\":\"x\"}}", &err), -1);
    ck_assert_str_eq(err, "phone_number_id is not a number");
    ck_assert_int_eq(parse(&o, NULL, "55", "{}", &err), -1);
    ck_assert_str_eq(err, "no phone_number_id");
    ck_assert_int_eq(parse(&o, "1", "55", "[1]", &err), -1);
    ck_assert_int_eq(parse(&o, "1", "55", "{\"type\":\"text\"}", &err), -1);
    ck_assert_int_eq(parse(&o, "1", NULL, "{\"type\":\"text\",\"text\":"
                           "{\"body\":\"x\"}}", &err), -1);
    ck_assert_str_eq(err, "neither to nor recipient");

    strcpy(big, "{\"type\":\"text\",\"text\":{\"body\":\"");
    memset(big + strlen(big), 'a', 4097);
    strcpy(big + strlen("{\"type\":\"text\",\"text\":{\"body\":\"") + 4097,
           "\"}}");
    ck_assert_int_eq(parse(&o, "1", "55", big, &err), -1);
    ck_assert_str_eq(err, "text body is over 4096 characters");
}
END_TEST


static wa_verdict_t
verdict(long status, const char *body)
{
    wa_graph_result_t  r;

    wa_graph_result(&r, status, body, body ? strlen(body) : 0, "timeout");
    return r.verdict;
}


START_TEST(answers)
{
    wa_graph_result_t  r;
    const char        *ok = "{\"messaging_product\":\"whatsapp\",\"messages\":"
                            "[{\"id\":\"wamid.A\"}]}";

    wa_graph_result(&r, 200, ok, strlen(ok), NULL);
    ck_assert_int_eq(r.verdict, WA_SENT);
    ck_assert_str_eq(r.wamid, "wamid.A");

    ck_assert_int_eq(verdict(200, "{\"success\":true}"), WA_SENT);
    ck_assert_int_eq(verdict(200, "{}"), WA_GIVE_UP);
    ck_assert_int_eq(verdict(0, NULL), WA_RETRY);
    ck_assert_int_eq(verdict(502, ""), WA_RETRY);
    ck_assert_int_eq(verdict(400, "junk"), WA_GIVE_UP);
    ck_assert_int_eq(verdict(400, "{\"error\":{\"code\":131056}}"),
                     WA_RETRY_RECIPIENT);
    ck_assert_int_eq(verdict(400, "{\"error\":{\"code\":130429}}"),
                     WA_RETRY_NUMBER);
    ck_assert_int_eq(verdict(400, "{\"error\":{\"code\":131057}}"),
                     WA_RETRY_LATER);
    ck_assert_int_eq(verdict(401, "{\"error\":{\"code\":190}}"), WA_TOKEN);
    ck_assert_int_eq(verdict(400, "{\"error\":{\"code\":131047}}"),
                     WA_GIVE_UP);
    /* the code decides, not the HTTP status */
    ck_assert_int_eq(verdict(500, "{\"error\":{\"code\":131050}}"),
                     WA_GIVE_UP);
    ck_assert_int_eq(verdict(400, "{\"error\":{\"code\":131000}}"),
                     WA_RETRY);
}
END_TEST


/* the retries' backoff, from --retry-base-ms (1000 here) */
START_TEST(backoff)
{
    /* doubling, from the first retry, up to about 10 minutes */
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 1), 1000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 2), 2000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 5), 16000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 11), 1024000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 12), 1024000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1000, 1000), 1024000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY_NUMBER, 1000, 3), 4000);

    /* the pair limit: 4^n, up to about an hour */
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY_RECIPIENT, 1000, 1), 1000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY_RECIPIENT, 1000, 3), 16000);
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY_RECIPIENT, 1000, 50),
                     4096000);

    /* a throughput upgrade: a minute's worth */
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY_LATER, 1000, 7), 60000);

    /* a tiny base stops at 20 doublings */
    ck_assert_int_eq(wa_graph_backoff(WA_RETRY, 1, 100), 524288);
}
END_TEST


Suite *
outbox_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("outbox");
    tc = tcase_create("outbox");
    tcase_add_test(tc, entries);
    tcase_add_test(tc, answers);
    tcase_add_test(tc, backoff);
    suite_add_tcase(s, tc);

    return s;
}
