/*
 * wa-relay: split one WhatsApp webhook body into normalized events.
 *
 * Used by the nginx module, the unit tests and the fuzzers; the body is
 * parsed by wa_json (simdjson).  Every string an event points to lives in
 * the body, in the caller's parser or in memory from the caller's
 * allocator: it stays valid until the parser's next wa_normalize() or the
 * allocator's release, whichever comes first.
 */

#ifndef WA_NORMALIZE_H
#define WA_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "wa_json.h"
#include "wa_streams.h"


/* an event never has more fields than this; the rest stays in "raw" */
#define WA_EVENT_MAX_FIELDS  48


typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *data;
    size_t       len;
} wa_field_t;


typedef struct {
    wa_stream_t  stream;
    const char  *kind;
    size_t       kind_len;
    const char  *event_id;
    size_t       event_id_len;
    wa_field_t  *fields;
    size_t       nfields;
} wa_event_t;


typedef wa_json_alloc_pt  wa_alloc_pt;


typedef struct {
    wa_alloc_pt        alloc;
    void              *alloc_data;
    wa_json_parser_t  *parser;          /* the caller's, reused */

    wa_event_t        *events;
    size_t             nevents;
    size_t             nalloc;

    /* set when the body, or a piece of it, was kept as "unparsed" */
    const char        *error;
    char               error_buf[160];
} wa_batch_t;


/*
 * Fills b->events from the body.  b->alloc and b->parser must be set;
 * everything else is set by the call.  Returns 0, or -1 when memory ran out
 * (b->error says so).  A body that is not JSON or not a WhatsApp envelope
 * is not an error: it becomes one "unparsed" event holding the body, and
 * b->error says why.
 */
int wa_normalize(wa_batch_t *b, const char *body, size_t len,
    int64_t received_ms);

/* the value of a field of an event, or NULL; fieldn for any name */
const wa_field_t *wa_event_field(const wa_event_t *ev, const char *name);
const wa_field_t *wa_event_fieldn(const wa_event_t *ev, const char *name,
    size_t len);

/*
 * A field whose name comes earlier in the event too, or NULL.  The
 * normalizer never makes one; tests and fuzzers check that it does not.
 */
const wa_field_t *wa_event_repeated_name(const wa_event_t *ev);

#endif /* WA_NORMALIZE_H */
