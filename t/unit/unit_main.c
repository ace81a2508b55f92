/* wa-relay: the unit test runner. */

#include <stdlib.h>

#include "unit.h"


int
main(void)
{
    int       failed;
    SRunner  *sr;

    sr = srunner_create(normalize_suite());
    srunner_add_suite(sr, signature_suite());
    srunner_add_suite(sr, query_suite());
    srunner_add_suite(sr, keyword_suite());
    srunner_add_suite(sr, outbox_suite());
    srunner_add_suite(sr, partition_suite());
    srunner_add_suite(sr, reply_suite());
    srunner_add_suite(sr, pace_suite());
    srunner_add_suite(sr, slots_suite());
    srunner_add_suite(sr, ingest_suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
