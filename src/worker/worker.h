/*
 * wa-relayd: the consumer loop's state, shared by its parts.
 */

#ifndef WA_WORKER_H
#define WA_WORKER_H

#include <stdatomic.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "link.h"
#include "options.h"
#include "part.h"
#include "reader.h"
#include "service.h"
#include "wa_streams.h"

/* what the state function said of the entries it was given */
typedef struct {
    long long   applied;
    long long   duplicates;
    long long   skipped;
    long long   dead;           /* could not be applied: in <prefix>:dead */
    long long   errors;         /* calls that failed: entries left pending */
} wa_counters_t;

/* the kinds of a call's entries, for the metrics */
#define WA_CALL_KINDS  8

typedef struct {
    char     name[48];
    long     n;
} wa_call_kind_t;

/* one FCALL wa_apply_1, formatted */
typedef struct {
    int              s;             /* the stream */
    size_t           n;             /* its entries */
    char            *cmd;
    size_t           len;
    long long        sent_us;
    int              nkinds;
    wa_call_kind_t   kinds[WA_CALL_KINDS + 1];   /* and "other" */
} wa_apply_call_t;

/* what one XREADGROUP gave: a call per stream */
typedef struct {
    wa_apply_call_t   call[WA_STREAM_COUNT];
    int               ncalls;
} wa_apply_batch_t;

typedef struct {
    const wa_options_t  *o;
    const wa_part_t     *part;
    wa_service_t         service;
    wa_link_t            link;
    wa_reader_t          reader;
    char                 stream[WA_STREAM_COUNT][256];
    char                 dead[256];
    char                 guard[256];        /* never written: see consume.c */
    const char          *apply_options;     /* JSON: the automatic replies */
    wa_counters_t        n;
    wa_apply_batch_t     held;              /* read, not yet applied */

    /* when the periodic parts run next, and the counters last logged */
    long long            next_claim;
    long long            next_trim;
    long long            since;
    wa_counters_t        last;
} wa_worker_t;

/* consume.c: 0, or -1 when the connection is gone */
void wa_consume_init(wa_worker_t *w, const wa_options_t *o,
    const wa_part_t *part);
int wa_consume_start(wa_worker_t *w);
int wa_consume_read(wa_worker_t *w);
int wa_consume_drain(wa_worker_t *w);
void wa_consume_forget(wa_worker_t *w);
int wa_consume_reclaim(wa_worker_t *w);
int wa_consume_trim(wa_worker_t *w);

/* replies.c: the automatic replies as wa_apply_1's options */
char *wa_replies_options(const wa_options_t *o);

/*
 * The services of a partition (service.h), started: 0 or -1.  What they
 * are given is read until wa_services_stop() returns.
 *
 * consumer.c: the event streams, applied by wa_apply_1 (apply_options:
 * the automatic replies, wa_replies_options); sender.c: the outbox
 * (--token-file); media.c: the media fetcher (--media-dir).
 */
int wa_consumer_start(const wa_options_t *o, const wa_part_t *part,
    const char *apply_options);
int wa_sender_start(const wa_options_t *o, const wa_part_t *part);
int wa_media_start(const wa_options_t *o, const wa_part_t *part);

#endif /* WA_WORKER_H */
