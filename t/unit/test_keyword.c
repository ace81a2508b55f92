/* opt-out / opt-in keywords: whole trimmed text, any case, no accents */

#include <string.h>

#include "unit.h"
#include "wa_keyword.h"


static int
match(const char *list, const char *text)
{
    int            m;
    wa_keywords_t  kw;

    ck_assert_int_eq(wa_keywords_parse(&kw, list), 0);
    m = wa_keywords_match(&kw, text, strlen(text));
    wa_keywords_free(&kw);

    return m;
}


START_TEST(whole_text)
{
    ck_assert_int_eq(match("STOP,PARAR", "STOP"), 1);
    ck_assert_int_eq(match("STOP,PARAR", "stop"), 1);
    ck_assert_int_eq(match("STOP,PARAR", "  Parar \r\n"), 1);
    ck_assert_int_eq(match("STOP,PARAR", "stop please"), 0);
    ck_assert_int_eq(match("STOP,PARAR", "STOPP"), 0);
    ck_assert_int_eq(match("STOP,PARAR", ""), 0);
    ck_assert_int_eq(match("STOP,PARAR", "   "), 0);
}
END_TEST


START_TEST(accents)
{
    /* "sáir", "CANCELÁR", "ÂRRÊT" in UTF-8 */
    ck_assert_int_eq(match("SAIR", "s\xc3\xa1ir"), 1);
    ck_assert_int_eq(match("CANCELAR", "CANCEL\xc3\x81R"), 1);
    ck_assert_int_eq(match("ARRET", "\xc3\x82RR\xc3\x8aT"), 1);
    /* a keyword configured with accents matches without them too */
    ck_assert_int_eq(match("ARR\xc3\x8aT", "arret"), 1);
    /* other scripts are compared as they are */
    ck_assert_int_eq(match("\xd0\xa1\xd0\xa2\xd0\x9e\xd0\x9f",
                           "\xd0\xa1\xd0\xa2\xd0\x9e\xd0\x9f"), 1);
    ck_assert_int_eq(match("STOP", "ST\xc3\x96P"), 1);
    ck_assert_int_eq(match("STOP", "\xf0\x9f\x9b\x91"), 0);
}
END_TEST


START_TEST(limits)
{
    char           long_text[300];
    wa_keywords_t  kw;

    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';

    ck_assert_int_eq(match("STOP", long_text), 0);
    ck_assert_int_eq(wa_keywords_parse(&kw, long_text), -1);
    ck_assert_int_eq(match(" stop , ,END ", "end"), 1);
    /* a truncated UTF-8 sequence is not a crash */
    ck_assert_int_eq(match("STOP", "STOP\xc3"), 0);
}
END_TEST


Suite *
keyword_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("keyword");
    tc = tcase_create("keyword");
    tcase_add_test(tc, whole_text);
    tcase_add_test(tc, accents);
    tcase_add_test(tc, limits);
    suite_add_tcase(s, tc);

    return s;
}
