/*
 * wa-relay: FCALL wa_ingest_3, the call the nginx module makes for the
 * requests of one turn of its event loop (redis/wa_ingest.lua reads it):
 *
 *   FCALL wa_ingest_3 <numkeys> [<dedupe key>...] <stream used>...
 *         [<guard>] <dedupe seconds> <cap> <requests>
 *         { <events> { <stream's index in KEYS> <n> <name> <value>... }... }...
 *
 * The dedupe keys come one per event, in order, when deduplication is on;
 * a stream is named once if some event goes to it, and the events name it
 * by its index in KEYS.  The guard, with partitions, is a key of the
 * partition's slot that is never written (docs/redis.md, "Partitions").
 *
 * Built over plain structs, with no allocation: the caller sizes the
 * arrays (wa_ingest_argc, wa_ingest_digits) and owns every byte.
 */

#ifndef WA_INGEST_H
#define WA_INGEST_H

#include <stddef.h>

#include "wa_normalize.h"
#include "wa_streams.h"

#define WA_INGEST_FUNCTION  "wa_ingest_3"

typedef struct {
    const char              *data;
    size_t                   len;
} wa_bytes_t;

typedef struct wa_ingest_req_s  wa_ingest_req_t;

/* one request of a call: its events, and their dedupe keys */
struct wa_ingest_req_s {
    wa_ingest_req_t         *next;
    const wa_event_t        *events;
    const wa_bytes_t        *keys;          /* one per event, if deduped */
    size_t                   nevents;
};

typedef struct {
    wa_ingest_req_t         *first;
    size_t                   requests;
    size_t                   events;        /* of every request */
    size_t                   fields;        /* of every event */
    unsigned char            used[WA_STREAM_COUNT];
    wa_bytes_t               streams[WA_STREAM_COUNT];  /* the keys */
    wa_bytes_t               guard;         /* len 0: none */
    int                      dedupe;        /* the keys named */
    wa_bytes_t               dedupe_seconds;
    wa_bytes_t               cap;           /* MAXLEN ~, "0": none */
} wa_ingest_call_t;

/* the arguments of the call, and the bytes its numbers take */
size_t wa_ingest_argc(const wa_ingest_call_t *c);
size_t wa_ingest_digits(const wa_ingest_call_t *c);

/*
 * argv and lens of wa_ingest_argc(c) each, digits of wa_ingest_digits(c)
 * bytes: the numbers are written there, and pointed to.  Returns argc.
 */
size_t wa_ingest_format(const wa_ingest_call_t *c, const char **argv,
    size_t *lens, char *digits);

#endif /* WA_INGEST_H */
