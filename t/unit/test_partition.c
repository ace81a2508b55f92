/* wa-relay: unit tests of the partitions of the key layout. */

#include <stdio.h>
#include <string.h>

#include "unit.h"
#include "wa_partition.h"


static unsigned
slot(const char *key)
{
    return wa_key_slot(key, strlen(key));
}


/* the slots Redis Cluster gives (CLUSTER KEYSLOT in its documentation) */
START_TEST(slots_as_redis_cluster)
{
    ck_assert_uint_eq(slot("foo"), 12182);
    ck_assert_uint_eq(slot("somekey"), 11058);
    ck_assert_uint_eq(slot("{foo}.bar"), 12182);
    ck_assert_uint_eq(slot("x{foo}y{z}"), 12182);

    /* an empty tag, or none closed: the whole key is hashed */
    ck_assert_uint_eq(slot("{}foo"), wa_key_slot("{}foo", 5));
    ck_assert_uint_ne(slot("{}foo"), slot("foo"));
    ck_assert_uint_ne(slot("{foo"), slot("foo"));
}
END_TEST


/* each tag's slot is in its partition's share, every partition its own */
START_TEST(tags_spread_over_the_slots)
{
    char      tag[WA_TAG_LEN], key[64];
    size_t    len;
    unsigned  n, p, s, lo, hi;

    static const unsigned  counts[] = { 2, 3, 12, 48, 1024 };

    for (n = 0; n < sizeof(counts) / sizeof(counts[0]); n++) {
        for (p = 0; p < counts[n]; p++) {
            len = wa_partition_tag(p, counts[n], tag);
            ck_assert_uint_eq(len, strlen(tag));

            lo = (unsigned) ((unsigned long) p * WA_SLOTS / counts[n]);
            hi = (unsigned) ((unsigned long) (p + 1) * WA_SLOTS / counts[n]);
            s = wa_key_slot(tag, len);
            ck_assert(s >= lo && s < hi);

            /* and a key under the prefix hashes to the tag's slot */
            len = wa_partition_prefix("wa", 2, p, counts[n], key,
                                      sizeof(key));
            ck_assert_uint_eq(wa_key_slot(key, len), s);
        }
    }
}
END_TEST


START_TEST(prefixes_and_partitions)
{
    char      buf[64];
    unsigned  i, p, seen[12];

    ck_assert_uint_eq(wa_partition_prefix("wa", 2, 0, 1, buf, sizeof(buf)),
                      2);
    ck_assert_str_eq(buf, "wa");
    ck_assert_uint_eq(wa_partition_prefix("wa", 2, 0, 12, buf, sizeof(buf)),
                      strlen(buf));
    ck_assert_str_eq(buf, "wa:{0.13}");
    ck_assert_uint_eq(wa_partition_prefix("wa", 2, 0, 12, buf, 5), 0);

    /* one partition: always 0; several: stable, and all of them used */
    ck_assert_uint_eq(wa_partition_of("106540352242922", 15, 1), 0);
    p = wa_partition_of("106540352242922", 15, 12);
    ck_assert_uint_eq(wa_partition_of("106540352242922", 15, 12), p);
    ck_assert_uint_lt(p, 12);

    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 200; i++) {
        snprintf(buf, sizeof(buf), "1065%06u", i);
        seen[wa_partition_of(buf, strlen(buf), 12)]++;
    }
    for (i = 0; i < 12; i++) {
        ck_assert_uint_gt(seen[i], 8);
    }
}
END_TEST


Suite *
partition_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("partition");
    tc = tcase_create("layout");
    tcase_add_test(tc, slots_as_redis_cluster);
    tcase_add_test(tc, tags_spread_over_the_slots);
    tcase_add_test(tc, prefixes_and_partitions);
    suite_add_tcase(s, tc);

    return s;
}
