/* wa-relay: unit tests of signature parsing and HMAC checking. */

#include <string.h>

#include "unit.h"
#include "wa_signature.h"


/* a vector computed apart from the code: openssl dgst -sha256 -hmac */
static const char *vector_body =
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":"
    "\"102290129340398\",\"changes\":[{\"value\":{\"messaging_product\":"
    "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550783881\","
    "\"phone_number_id\":\"106540352242922\"},\"contacts\":[{\"profile\":"
    "{\"name\":\"Jos\\u00e9\"},\"wa_id\":\"16505551234\"}],\"messages\":"
    "[{\"from\":\"16505551234\",\"id\":\"wamid.TEST\",\"timestamp\":"
    "\"1749416383\",\"type\":\"text\",\"text\":{\"body\":"
    "\"caf\\u00e9 \\/ ok\"}}]},\"field\":\"messages\"}]}]}";

static const char *vector_sha256 =
    "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834f4aafe37dc2a28804134";
static const char *vector_sha1 =
    "sha1=8726a8884e8149672b33ca48a030464d39ff4dc6";


static int
verify(wa_sig_alg_t alg, const char *secret, const char *header,
    const char *body)
{
    int             rc;
    unsigned char   sig[WA_SIG_MAX];
    wa_hmac_key_t  *key;

    if (wa_sig_parse(alg, header, strlen(header), sig) != 0) {
        return -2;
    }

    key = wa_hmac_key_new(alg, secret, strlen(secret));
    ck_assert_ptr_nonnull(key);

    rc = wa_hmac_verify(key, sig, body, strlen(body));
    wa_hmac_key_free(key);

    return rc;
}


START_TEST(test_vector)
{
    ck_assert_int_eq(strlen(vector_body), 428);
    ck_assert_int_eq(verify(WA_SIG_SHA256, "my_app_secret", vector_sha256,
                            vector_body), 1);
    ck_assert_int_eq(verify(WA_SIG_SHA1, "my_app_secret", vector_sha1,
                            vector_body), 1);
}
END_TEST


START_TEST(wrong_secret_or_body)
{
    char  body[512];

    ck_assert_int_eq(verify(WA_SIG_SHA256, "other_secret", vector_sha256,
                            vector_body), 0);

    /* one byte changed: a re-serialized body (é instead of \u00e9) */
    strcpy(body, vector_body);
    body[strlen(body) - 10] ^= 1;
    ck_assert_int_eq(verify(WA_SIG_SHA256, "my_app_secret", vector_sha256,
                            body), 0);
}
END_TEST


START_TEST(key_is_reusable)
{
    unsigned char   sig[WA_SIG_MAX];
    wa_hmac_key_t  *key;
    int             i;

    key = wa_hmac_key_new(WA_SIG_SHA256, "my_app_secret", 13);
    ck_assert_int_eq(wa_sig_parse(WA_SIG_SHA256, vector_sha256,
                                  strlen(vector_sha256), sig), 0);

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(wa_hmac_verify(key, sig, vector_body,
                                        strlen(vector_body)), 1);
        ck_assert_int_eq(wa_hmac_verify(key, sig, "x", 1), 0);
    }

    wa_hmac_key_free(key);
}
END_TEST


START_TEST(header_parsing)
{
    unsigned char  sig[WA_SIG_MAX];
    const char    *upper = "SHA256=10E70590CB5FC195DD4FD20731C943470910B2BB"
                           "D834F4AAFE37DC2A28804134";

    ck_assert_int_eq(wa_sig_parse(WA_SIG_SHA256, upper, strlen(upper), sig),
                     0);
    ck_assert_int_eq(sig[0], 0x10);
    ck_assert_int_eq(sig[31], 0x34);

#define BAD(alg, s)  ck_assert_int_eq(wa_sig_parse(alg, s, strlen(s), sig), -1)
    BAD(WA_SIG_SHA256, "");
    BAD(WA_SIG_SHA256, "sha256=");
    BAD(WA_SIG_SHA256, "sha256=10e7");
    BAD(WA_SIG_SHA256, vector_sha1);
    BAD(WA_SIG_SHA1, vector_sha256);
    BAD(WA_SIG_SHA256, "sha256:10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a28804134");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413g");
    /* the bytes either side of each range of digits, and one above 127 */
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413/");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413:");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413@");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413G");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413`");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a2880413\xe1");
    BAD(WA_SIG_SHA256, "sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd834"
                       "f4aafe37dc2a28804134 ");
    BAD(WA_SIG_SHA256, " sha256=10e70590cb5fc195dd4fd20731c943470910b2bbd83"
                       "4f4aafe37dc2a28804134");
#undef BAD
}
END_TEST


START_TEST(secret_equal)
{
    ck_assert(wa_secret_equal("token", 5, "token", 5));
    ck_assert(!wa_secret_equal("token", 5, "tokeN", 5));
    ck_assert(!wa_secret_equal("token", 5, "token!", 6));
    ck_assert(!wa_secret_equal("", 0, "x", 1));
    ck_assert(wa_secret_equal("", 0, "", 0));
}
END_TEST


Suite *
signature_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("signature");
    tc = tcase_create("hmac");
    tcase_add_test(tc, test_vector);
    tcase_add_test(tc, wrong_secret_or_body);
    tcase_add_test(tc, key_is_reusable);
    tcase_add_test(tc, header_parsing);
    tcase_add_test(tc, secret_equal);
    suite_add_tcase(s, tc);

    return s;
}
