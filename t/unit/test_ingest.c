/* wa-relay: unit tests of FCALL wa_ingest_3 as the module formats it. */

#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "wa_ingest.h"


#define B(s)  { s, sizeof(s) - 1 }


/* the call's arguments as C strings, to compare with what is expected */
static char **
format(wa_ingest_call_t *c, size_t *argc)
{
    char         **out, *digits;
    size_t         i, *lens, n;
    const char   **argv;

    n = wa_ingest_argc(c);
    argv = calloc(n, sizeof(char *));
    lens = calloc(n, sizeof(size_t));
    digits = calloc(1, wa_ingest_digits(c));
    out = calloc(n, sizeof(char *));
    ck_assert_ptr_nonnull(argv);
    ck_assert_ptr_nonnull(lens);
    ck_assert_ptr_nonnull(digits);
    ck_assert_ptr_nonnull(out);

    /* every argument sized beforehand is written, no more */
    ck_assert_uint_eq(wa_ingest_format(c, argv, lens, digits), n);

    for (i = 0; i < n; i++) {
        out[i] = strndup(argv[i], lens[i]);
        ck_assert_ptr_nonnull(out[i]);
    }

    free(argv);
    free(lens);
    free(digits);
    *argc = n;

    return out;
}


static void
expect(char **got, size_t argc, const char **want)
{
    size_t  i;

    for (i = 0; want[i]; i++) {
        ck_assert_uint_lt(i, argc);
        ck_assert_str_eq(got[i], want[i]);
    }

    ck_assert_uint_eq(i, argc);

    for (i = 0; i < argc; i++) {
        free(got[i]);
    }

    free(got);
}


/* a call of requests from first on, the counts it holds, its ARGV */
static void
call_init(wa_ingest_call_t *c, wa_ingest_req_t *first, size_t requests,
    size_t events, size_t fields, const char *seconds, const char *cap)
{
    memset(c, 0, sizeof(wa_ingest_call_t));
    c->first = first;
    c->requests = requests;
    c->events = events;
    c->fields = fields;
    c->dedupe_seconds = (wa_bytes_t) { seconds, strlen(seconds) };
    c->cap = (wa_bytes_t) { cap, strlen(cap) };
}


static wa_field_t  text[] = {
    { "v", 1, "1", 1 }, { "kind", 4, "message", 7 }, { "text", 4, "hi", 2 }
};
static wa_field_t  status[] = {
    { "v", 1, "1", 1 }, { "kind", 4, "status", 6 }
};


/* two requests, deduped, with a partition's guard: KEYS then ARGV */
START_TEST(two_requests_deduped_in_a_partition)
{
    char              **got;
    size_t              argc;
    wa_event_t          e1[2], e2[1];
    wa_ingest_req_t     r1, r2;
    wa_ingest_call_t    c;
    wa_bytes_t          k1[] = { B("wa:{0.1}:seen:message:m1"),
                                 B("wa:{0.1}:seen:status:s1") };
    wa_bytes_t          k2[] = { B("wa:{0.1}:seen:message:m2") };

    static const char  *want[] = {
        "FCALL", "wa_ingest_3", "6",
        "wa:{0.1}:seen:message:m1", "wa:{0.1}:seen:status:s1",
        "wa:{0.1}:seen:message:m2",
        "wa:{0.1}:messages", "wa:{0.1}:statuses", "wa:{0.1}:migrating",
        "86400", "100000", "2",
        "2",
        "4", "3", "v", "1", "kind", "message", "text", "hi",
        "5", "2", "v", "1", "kind", "status",
        "1",
        "4", "3", "v", "1", "kind", "message", "text", "hi",
        NULL
    };

    memset(e1, 0, sizeof(e1));
    memset(e2, 0, sizeof(e2));
    e1[0].stream = WA_STREAM_MESSAGES;
    e1[0].fields = text;
    e1[0].nfields = 3;
    e1[1].stream = WA_STREAM_STATUSES;
    e1[1].fields = status;
    e1[1].nfields = 2;
    e2[0] = e1[0];

    r1 = (wa_ingest_req_t) { &r2, e1, k1, 2 };
    r2 = (wa_ingest_req_t) { NULL, e2, k2, 1 };

    call_init(&c, &r1, 2, 3, 8, "86400", "100000");
    c.used[WA_STREAM_MESSAGES] = 1;
    c.used[WA_STREAM_STATUSES] = 1;
    c.streams[WA_STREAM_MESSAGES] = (wa_bytes_t) B("wa:{0.1}:messages");
    c.streams[WA_STREAM_STATUSES] = (wa_bytes_t) B("wa:{0.1}:statuses");
    c.streams[WA_STREAM_ACCOUNT] = (wa_bytes_t) B("wa:{0.1}:account");
    c.guard = (wa_bytes_t) B("wa:{0.1}:migrating");
    c.dedupe = 1;

    got = format(&c, &argc);
    expect(got, argc, want);
}
END_TEST


/* no dedupe, no partitions: the streams are the only keys */
START_TEST(streams_only_without_dedupe)
{
    char              **got;
    size_t              argc;
    wa_event_t          e[1];
    wa_ingest_req_t     r;
    wa_ingest_call_t    c;

    static const char  *want[] = {
        "FCALL", "wa_ingest_3", "1", "wa:account",
        "0", "0", "1",
        "1", "1", "2", "v", "1", "kind", "status",
        NULL
    };

    memset(e, 0, sizeof(e));
    e[0].stream = WA_STREAM_ACCOUNT;
    e[0].fields = status;
    e[0].nfields = 2;
    r = (wa_ingest_req_t) { NULL, e, NULL, 1 };

    call_init(&c, &r, 1, 1, 2, "0", "0");
    c.used[WA_STREAM_ACCOUNT] = 1;
    c.streams[WA_STREAM_ACCOUNT] = (wa_bytes_t) B("wa:account");

    got = format(&c, &argc);
    expect(got, argc, want);
}
END_TEST


/* many events: the numbers fit in the room sized, counts in decimal */
START_TEST(large_calls_fit)
{
    char              **got;
    size_t              argc, i, n;
    wa_field_t         *f;
    wa_event_t         *e;
    wa_bytes_t         *k;
    wa_ingest_req_t     r;
    wa_ingest_call_t    c;

    n = 12345;
    e = calloc(n, sizeof(wa_event_t));
    k = calloc(n, sizeof(wa_bytes_t));
    f = calloc(1, sizeof(wa_field_t));
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(f);
    *f = (wa_field_t) { "v", 1, "1", 1 };

    for (i = 0; i < n; i++) {
        e[i].stream = WA_STREAM_MESSAGES;
        e[i].fields = f;
        e[i].nfields = 1;
        k[i] = (wa_bytes_t) B("k");
    }

    r = (wa_ingest_req_t) { NULL, e, k, n };

    call_init(&c, &r, 1, n, n, "60", "0");
    c.used[WA_STREAM_MESSAGES] = 1;
    c.streams[WA_STREAM_MESSAGES] = (wa_bytes_t) B("wa:messages");
    c.dedupe = 1;

    got = format(&c, &argc);

    ck_assert_uint_eq(argc, 3 + n + 1 + 3 + 1 + 4 * n);
    ck_assert_str_eq(got[2], "12346");           /* n keys, one stream */
    ck_assert_str_eq(got[3 + n], "wa:messages");
    ck_assert_str_eq(got[3 + n + 4], "12345");   /* the request's events */
    ck_assert_str_eq(got[3 + n + 5], "12346");   /* the stream's index */

    for (i = 0; i < argc; i++) {
        free(got[i]);
    }

    free(got);
    free(e);
    free(k);
    free(f);
}
END_TEST


Suite *
ingest_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("ingest");
    tc = tcase_create("format");
    tcase_add_test(tc, two_requests_deduped_in_a_partition);
    tcase_add_test(tc, streams_only_without_dedupe);
    tcase_add_test(tc, large_calls_fit);
    suite_add_tcase(s, tc);

    return s;
}
