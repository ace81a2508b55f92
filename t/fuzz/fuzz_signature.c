/* libFuzzer: signature headers and HMAC checks on any bytes */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wa_signature.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char          out[WA_SIG_MAX];
    static wa_hmac_key_t  *key;

    if (key == NULL) {
        key = wa_hmac_key_new(WA_SIG_SHA256, "fuzz", 4);
    }

    if (wa_sig_parse(WA_SIG_SHA256, (const char *) data, size, out) == 0) {
        /* parsed: so it was "sha256=" (any case) and 64 hex digits */
        if (size != 7 + 64 || strncasecmp((const char *) data, "sha256=", 7)
                              != 0)
        {
            abort();
        }

        (void) wa_hmac_verify(key, out, data, size);
    }

    (void) wa_sig_parse(WA_SIG_SHA1, (const char *) data, size, out);
    (void) wa_secret_equal(data, size, "fuzz", 4);

    return 0;
}
