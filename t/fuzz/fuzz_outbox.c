/*
 * libFuzzer: outbox entries (the input is split into fields at NUL bytes:
 * name, value, name, value ...) and Graph API answers (the same bytes as a
 * response body under a few statuses).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wa_graph.h"
#include "wa_outbox.h"

#define MAXF  16


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char               *copy, *p, *end, *req;
    size_t              n, lens[MAXF];
    const char         *names[MAXF], *values[MAXF], *err;
    wa_outbox_t         o;
    wa_graph_result_t   r;
    static const long   statuses[] = { 0, 200, 400, 401, 500 };

    for (n = 0; n < sizeof(statuses) / sizeof(statuses[0]); n++) {
        wa_graph_result(&r, statuses[n], (const char *) data, size, "x");

        if (r.verdict > WA_TOKEN) {
            abort();
        }
    }

    copy = malloc(size + 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);
    copy[size] = '\0';

    p = copy;
    end = copy + size;
    n = 0;

    while (p < end && n < MAXF) {
        names[n] = p;
        p += strlen(p) + 1;

        if (p > end) {
            break;
        }

        values[n] = p;
        lens[n] = strlen(p);
        p += lens[n] + 1;
        n++;
    }

    if (wa_outbox_parse(&o, names, values, lens, n, &err) == 0) {
        req = wa_outbox_request(&o, "wa:0-1");
        free(req);
        wa_outbox_free(&o);

    } else if (err == NULL) {
        abort();
    }

    free(copy);

    return 0;
}
