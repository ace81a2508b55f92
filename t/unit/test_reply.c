/* wa-relay: unit tests of Redis error replies, classified. */

#include <string.h>

#include "unit.h"
#include "wa_reply.h"


static wa_reply_kind_t
kind(const char *err)
{
    return wa_reply_kind(err, strlen(err));
}


/* Redis 7's wording of each error the module and the worker answer to */
START_TEST(kinds_as_redis_words_them)
{
    ck_assert_int_eq(kind("NOPERM this user has no permissions to run the "
                          "'zcount' command"), WA_REPLY_DENIED);
    ck_assert_int_eq(kind("WRONGPASS invalid username-password pair or user "
                          "is disabled."), WA_REPLY_DENIED);
    ck_assert_int_eq(kind("NOAUTH Authentication required."),
                     WA_REPLY_DENIED);
    ck_assert_int_eq(kind("ERR The user executing the script can't run "
                          "this command or subcommand"), WA_REPLY_DENIED);
    ck_assert_int_eq(kind("ERR Function not found"), WA_REPLY_NO_FUNCTION);
    ck_assert_int_eq(kind("ERR Error running script: Function not found"),
                     WA_REPLY_NO_FUNCTION);
    ck_assert_int_eq(kind("READONLY You can't write against a read only "
                          "replica."), WA_REPLY_READONLY);
    ck_assert_int_eq(kind("MOVED 3999 127.0.0.1:6381"), WA_REPLY_MOVED);
    ck_assert_int_eq(kind("ASK 3999 127.0.0.1:6381"), WA_REPLY_ASK);
    ck_assert_int_eq(kind("TRYAGAIN Multiple keys request during rehashing "
                          "of slot"), WA_REPLY_TRYAGAIN);
    ck_assert_int_eq(kind("CLUSTERDOWN The cluster is down"),
                     WA_REPLY_CLUSTERDOWN);
    ck_assert_int_eq(kind("ERR unknown subcommand 'SHARDS'. Try CLUSTER "
                          "HELP."), WA_REPLY_UNKNOWN);
    ck_assert_int_eq(kind("ERR Unknown subcommand or wrong number of "
                          "arguments for 'SHARDS'. Try CLUSTER HELP."),
                     WA_REPLY_UNKNOWN);
    ck_assert_int_eq(kind("ERR unknown command 'FCALL', with args "
                          "beginning with: "), WA_REPLY_UNKNOWN);

    /* the errors a call answers for itself */
    ck_assert_int_eq(kind("OOM command not allowed when used memory > "
                          "'maxmemory'."), WA_REPLY_OTHER);
    ck_assert_int_eq(kind("WRONGTYPE Operation against a key holding the "
                          "wrong kind of value"), WA_REPLY_OTHER);
    ck_assert_int_eq(kind(""), WA_REPLY_OTHER);

    /* a prefix, not a word inside: "MOVED" alone is no redirection */
    ck_assert_int_eq(kind("MOVED"), WA_REPLY_OTHER);
    ck_assert_int_eq(kind("ERR NOPERM"), WA_REPLY_OTHER);

    /* the length given, not the terminator */
    ck_assert_int_eq(wa_reply_kind("NOAUTH", 3), WA_REPLY_OTHER);
}
END_TEST


static int
redirect(const char *err, wa_redirect_t *to)
{
    return wa_reply_redirect(err, strlen(err), to);
}


START_TEST(redirections_parsed)
{
    wa_redirect_t  to;

    ck_assert_int_eq(redirect("MOVED 3999 127.0.0.1:6381", &to), 0);
    ck_assert_uint_eq(to.slot, 3999);
    ck_assert_uint_eq(to.port, 6381);
    ck_assert_int_eq((int) to.host_len, 9);
    ck_assert(memcmp(to.host, "127.0.0.1", 9) == 0);

    ck_assert_int_eq(redirect("ASK 16383 redis-2.internal:7000", &to), 0);
    ck_assert_uint_eq(to.slot, 16383);
    ck_assert_uint_eq(to.port, 7000);
    ck_assert(to.host_len == 16
              && memcmp(to.host, "redis-2.internal", 16) == 0);

    /* IPv6: the port follows the last ':' */
    ck_assert_int_eq(redirect("MOVED 0 ::1:6379", &to), 0);
    ck_assert(to.host_len == 3 && memcmp(to.host, "::1", 3) == 0);
    ck_assert_uint_eq(to.port, 6379);
}
END_TEST


/* nothing but a well-formed MOVED or ASK is followed */
START_TEST(malformed_redirections_refused)
{
    wa_redirect_t  to;

    static const char  *bad[] = {
        "MOVED 16384 127.0.0.1:6381",   /* no such slot */
        "MOVED -1 127.0.0.1:6381",
        "MOVED 12a 127.0.0.1:6381",
        "MOVED  127.0.0.1:6381",        /* no slot */
        "MOVED 3999",                   /* no address */
        "MOVED 3999 127.0.0.1",         /* no port */
        "MOVED 3999 127.0.0.1:",
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 :6381",             /* no host */
        "ASK 1 h:6x",
        "READONLY You can't write against a read only replica.",
        "TRYAGAIN 3999 127.0.0.1:6381"  /* not a redirection */
    };

    size_t  i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(redirect(bad[i], &to) == -1, "followed: %s", bad[i]);
    }
}
END_TEST


Suite *
reply_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("reply");
    tc = tcase_create("kinds");
    tcase_add_test(tc, kinds_as_redis_words_them);
    tcase_add_test(tc, redirections_parsed);
    tcase_add_test(tc, malformed_redirections_refused);
    suite_add_tcase(s, tc);

    return s;
}
