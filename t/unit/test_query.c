/* wa-relay: unit tests of the query-string argument parser. */

#include <string.h>

#include "unit.h"
#include "wa_query.h"


static ssize_t
arg(const char *q, const char *name, char *out, size_t size)
{
    return wa_query_arg(q, strlen(q), name, out, size);
}


START_TEST(finds_and_decodes)
{
    char  buf[64];

    ck_assert_int_eq(arg("hub.mode=subscribe&hub.challenge=12", "hub.mode",
                         buf, sizeof(buf)), 9);
    ck_assert_mem_eq(buf, "subscribe", 9);

    ck_assert_int_eq(arg("a=1&hub.verify_token=t%C3%A9+x%2B%2f", 
                         "hub.verify_token", buf, sizeof(buf)), 7);
    ck_assert_mem_eq(buf, "t\xc3\xa9 x+/", 7);
}
END_TEST


START_TEST(absent_empty_and_first_wins)
{
    char  buf[64];

    ck_assert_int_eq(arg("hub.mode=x", "hub.challenge", buf, 64), -1);
    ck_assert_int_eq(arg("", "a", buf, 64), -1);
    ck_assert_int_eq(arg("hub.mode", "hub.mode", buf, 64), 0);
    ck_assert_int_eq(arg("hub.mode=&x=1", "hub.mode", buf, 64), 0);
    ck_assert_int_eq(arg("a=1&a=2", "a", buf, 64), 1);
    ck_assert_int_eq(buf[0], '1');
    /* a name that only starts like the one asked for is another name */
    ck_assert_int_eq(arg("hub.modes=1", "hub.mode", buf, 64), -1);
    ck_assert_int_eq(arg("xhub.mode=1&&hub.mode=2", "hub.mode", buf, 64), 1);
    ck_assert_int_eq(buf[0], '2');
}
END_TEST


START_TEST(malformed_escapes_and_limits)
{
    char  buf[4];

    ck_assert_int_eq(arg("a=%zz%4", "a", buf, 4), -2);
    ck_assert_int_eq(arg("a=%z%", "a", buf, 4), 3);
    ck_assert_mem_eq(buf, "%z%", 3);
    ck_assert_int_eq(arg("a=12345", "a", buf, 4), -2);
    ck_assert_int_eq(arg("a=%41%42%43%44", "a", buf, 4), 4);
    ck_assert_mem_eq(buf, "ABCD", 4);
}
END_TEST


Suite *
query_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("query");
    tc = tcase_create("arg");
    tcase_add_test(tc, finds_and_decodes);
    tcase_add_test(tc, absent_empty_and_first_wins);
    tcase_add_test(tc, malformed_escapes_and_limits);
    suite_add_tcase(s, tc);

    return s;
}
