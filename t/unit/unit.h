/*
 * wa-relay: C unit tests of the pure parts (src/core, and the worker's
 * pacing), run by Check.
 */

#ifndef WA_UNIT_H
#define WA_UNIT_H

#include <check.h>

Suite *normalize_suite(void);
Suite *signature_suite(void);
Suite *query_suite(void);
Suite *keyword_suite(void);
Suite *outbox_suite(void);
Suite *partition_suite(void);
Suite *reply_suite(void);
Suite *pace_suite(void);
Suite *slots_suite(void);
Suite *ingest_suite(void);

#endif
