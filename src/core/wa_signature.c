/*
 * wa-relay: Meta's webhook signatures.
 *
 * Each App Secret becomes an HMAC context keyed once, at configuration time.
 * A body re-initialises that same context without a key, which makes HMAC
 * start again from the padded key's digest states it kept: the key schedule
 * is not recomputed, and no context is allocated or freed per body (a
 * duplicate per body cost a third more).  A process checks one body at a
 * time.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "wa_signature.h"


struct wa_hmac_key_s {
    wa_sig_alg_t   alg;
    EVP_MAC_CTX   *ctx;
};


static const char *wa_sig_prefix[] = { "sha256=", "sha1=" };


size_t
wa_sig_size(wa_sig_alg_t alg)
{
    return alg == WA_SIG_SHA256 ? 32 : 20;
}


/*
 * A hex digit's value plus one, 0 for any other byte: a table rather than
 * comparisons, whose branches a signature's random digits mispredict half
 * of the time
 */
static const unsigned char  wa_hex_value[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
    ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16
};


static int
wa_unhex(char c)
{
    return wa_hex_value[(unsigned char) c] - 1;
}


int
wa_sig_parse(wa_sig_alg_t alg, const char *header, size_t len,
    unsigned char *out)
{
    int          hi, lo;
    size_t       i, plen, size;
    const char  *p;

    p = wa_sig_prefix[alg];
    plen = strlen(p);
    size = wa_sig_size(alg);

    if (len != plen + 2 * size || strncasecmp(header, p, plen) != 0) {
        return -1;
    }

    header += plen;

    for (i = 0; i < size; i++) {
        hi = wa_unhex(header[2 * i]);
        lo = wa_unhex(header[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


wa_hmac_key_t *
wa_hmac_key_new(wa_sig_alg_t alg, const void *secret, size_t len)
{
    EVP_MAC         *mac;
    OSSL_PARAM       params[2];
    wa_hmac_key_t   *key;

    key = OPENSSL_zalloc(sizeof(wa_hmac_key_t));
    if (key == NULL) {
        return NULL;
    }

    key->alg = alg;

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        OPENSSL_free(key);
        return NULL;
    }

    key->ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                    (char *) (alg == WA_SIG_SHA256 ? "SHA256" : "SHA1"), 0);
    params[1] = OSSL_PARAM_construct_end();

    if (key->ctx == NULL
        || !EVP_MAC_init(key->ctx, secret, len, params))
    {
        wa_hmac_key_free(key);
        return NULL;
    }

    return key;
}


void
wa_hmac_key_free(wa_hmac_key_t *key)
{
    if (key) {
        EVP_MAC_CTX_free(key->ctx);
        OPENSSL_free(key);
    }
}


int
wa_hmac_verify(wa_hmac_key_t *key, const unsigned char *expected,
    const void *data, size_t len)
{
    size_t          n;
    unsigned char   md[EVP_MAX_MD_SIZE];

    if (!EVP_MAC_init(key->ctx, NULL, 0, NULL)
        || !EVP_MAC_update(key->ctx, data, len)
        || !EVP_MAC_final(key->ctx, md, &n, sizeof(md))
        || n != wa_sig_size(key->alg))
    {
        return -1;
    }

    return CRYPTO_memcmp(md, expected, n) == 0;
}


int
wa_secret_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char  da[32], db[32];

    /* digests first, so that neither content nor length shows in time */
    if (!EVP_Digest(a, alen, da, NULL, EVP_sha256(), NULL)
        || !EVP_Digest(b, blen, db, NULL, EVP_sha256(), NULL))
    {
        return 0;
    }

    return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}
