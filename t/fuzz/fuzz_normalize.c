/* libFuzzer: any bytes into the normalizer: events or a clean error out */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wa_normalize.h"


static void *
fuzz_alloc(void *data, size_t size)
{
    void  **list = data, **p;

    /* a chain of blocks, freed at the end of the input */
    p = malloc(sizeof(void *) + size);
    if (p == NULL) {
        return NULL;
    }

    p[0] = *list;
    *list = p;

    return p + 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                    i, j;
    void                     *list, **p, *next;
    wa_batch_t                b;
    static wa_json_parser_t  *parser;

    if (parser == NULL) {
        parser = wa_json_parser_create();
        if (parser == NULL) {
            abort();
        }
    }

    list = NULL;
    memset(&b, 0, sizeof(b));
    b.alloc = fuzz_alloc;
    b.alloc_data = &list;
    b.parser = parser;

    if (wa_normalize(&b, (const char *) data, size, 1780000000000LL) == 0) {
        /*
         * every event is whole: an id, a raw, fields that can be read, no
         * name twice
         */
        for (i = 0; i < b.nevents; i++) {
            if (b.events[i].event_id_len == 0
                || wa_event_field(&b.events[i], "raw") == NULL)
            {
                abort();
            }

            for (j = 0; j < b.events[i].nfields; j++) {
                if (b.events[i].fields[j].name_len == 0) {
                    abort();
                }
            }

            if (wa_event_repeated_name(&b.events[i]) != NULL) {
                abort();
            }
        }
    }

    for (p = list; p; p = next) {
        next = p[0];
        free(p);
    }

    return 0;
}
