/* libFuzzer: the challenge's query string */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wa_query.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char      out[64];
    ssize_t   n;
    size_t    i;
    const char  *names[] = { "hub.mode", "hub.verify_token",
                             "hub.challenge", "" };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        n = wa_query_arg((const char *) data, size, names[i], out,
                         sizeof(out));

        if (n < -2 || n > (ssize_t) sizeof(out)) {
            abort();
        }
    }

    return 0;
}
