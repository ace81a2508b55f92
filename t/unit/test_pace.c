/* wa-relay: unit tests of the sender's pacing (src/worker/pace.c). */

#include <stdio.h>
#include <stdlib.h>

#include "pace.h"
#include "unit.h"


/* 80 messages a second: an interval of 12.5 ms, half of it as burst */
START_TEST(a_second_holds_the_rate)
{
    int        sent;
    wa_pace_t  p;
    long long  now, wait;

    ck_assert_int_eq(wa_pace_init(&p, 64), 0);

    /* one goes at once, the next waits for its turn, less the burst */
    ck_assert_int_eq(wa_pace_take(&p, "106540352242922", 0, 12.5, 6.25), 0);
    wait = wa_pace_take(&p, "106540352242922", 0, 12.5, 6.25);
    ck_assert_int_eq(wait, 7);
    ck_assert_int_eq(wa_pace_wait(&p, "106540352242922", 7, 6.25), 0);

    /* taken whenever allowed, a millisecond at a time, for a second */
    free(p.slots);
    ck_assert_int_eq(wa_pace_init(&p, 64), 0);
    for (now = 0, sent = 0; now < 1000; now++) {
        while (wa_pace_take(&p, "n", now, 12.5, 6.25) == 0) {
            sent++;
        }
    }

    ck_assert_int_ge(sent, 80);
    ck_assert_int_le(sent, 81);
    free(p.slots);
}
END_TEST


/* numbers are paced apart; a hold (Meta's 130429) keeps one waiting */
START_TEST(keys_apart_and_holds)
{
    wa_pace_t  p;

    ck_assert_int_eq(wa_pace_init(&p, 64), 0);

    ck_assert_int_eq(wa_pace_take(&p, "a", 0, 1000, 0), 0);
    ck_assert_int_gt(wa_pace_take(&p, "a", 0, 1000, 0), 0);
    ck_assert_int_eq(wa_pace_take(&p, "b", 0, 1000, 0), 0);

    wa_pace_hold(&p, "c", 500);
    ck_assert_int_eq(wa_pace_wait(&p, "c", 0, 0), 501);
    ck_assert_int_eq(wa_pace_wait(&p, "c", 500, 0), 0);

    /* a hold never brings a turn forward */
    wa_pace_hold(&p, "a", 10);
    ck_assert_int_eq(wa_pace_wait(&p, "a", 10, 0), 991);
    free(p.slots);
}
END_TEST


/*
 * More keys than the table holds: a key whose time has passed is
 * forgotten, and a busy one taken over can only wait less
 */
START_TEST(a_full_table_never_blocks)
{
    int        i;
    char       key[32];
    wa_pace_t  p;

    ck_assert_int_eq(wa_pace_init(&p, 8), 0);

    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        ck_assert_int_eq(wa_pace_take(&p, key, i, 6000, 0), 0);
    }

    /* one taken at 99 still waits its interval */
    ck_assert_int_eq(wa_pace_wait(&p, "user-99", 100, 0), 6000);

    /* long after: every key free again */
    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        ck_assert_int_eq(wa_pace_wait(&p, key, 100000, 0), 0);
    }

    free(p.slots);
}
END_TEST


Suite *
pace_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("pace");
    tc = tcase_create("gcra");
    tcase_add_test(tc, a_second_holds_the_rate);
    tcase_add_test(tc, keys_apart_and_holds);
    tcase_add_test(tc, a_full_table_never_blocks);
    suite_add_tcase(s, tc);

    return s;
}
