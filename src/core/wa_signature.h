/*
 * wa-relay: Meta's webhook signatures (X-Hub-Signature-256 and the legacy
 * X-Hub-Signature), checked with keys prepared once at configuration time.
 */

#ifndef WA_SIGNATURE_H
#define WA_SIGNATURE_H

#include <stddef.h>


typedef enum {
    WA_SIG_SHA256 = 0,
    WA_SIG_SHA1
} wa_sig_alg_t;

#define WA_SIG_MAX  32            /* bytes of the longest digest */


typedef struct wa_hmac_key_s  wa_hmac_key_t;


/* the digest length of alg: 32 or 20 */
size_t wa_sig_size(wa_sig_alg_t alg);

/*
 * Parses "sha256=<64 hex>" (or "sha1=<40 hex>") into out.  Hex digits of
 * either case are accepted; nothing else is.  Returns 0, or -1 when the
 * header is malformed.
 */
int wa_sig_parse(wa_sig_alg_t alg, const char *header, size_t len,
    unsigned char *out);

/* a key ready for HMAC; NULL when OpenSSL fails */
wa_hmac_key_t *wa_hmac_key_new(wa_sig_alg_t alg, const void *secret,
    size_t len);
void wa_hmac_key_free(wa_hmac_key_t *key);

/*
 * 1 when the HMAC of data under key equals expected, compared in constant
 * time; 0 when not; -1 when OpenSSL fails.
 */
int wa_hmac_verify(wa_hmac_key_t *key, const unsigned char *expected,
    const void *data, size_t len);

/* constant-time equality of two strings of any length */
int wa_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif /* WA_SIGNATURE_H */
