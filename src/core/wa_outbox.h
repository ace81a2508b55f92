/*
 * wa-relay: an outbox entry (what a service asks to send) and the Graph API
 * request body it becomes.  Pure: no I/O, unit tested and fuzzed.
 */

#ifndef WA_OUTBOX_H
#define WA_OUTBOX_H

#include <stddef.h>

#include <jansson.h>

typedef enum {
    WA_OUT_MESSAGE = 0,             /* free-form: text, media, interactive */
    WA_OUT_TEMPLATE,
    WA_OUT_REACTION,
    WA_OUT_READ                     /* mark an inbound message as read */
} wa_out_type_t;

typedef struct {
    const char     *phone_number_id;
    const char     *to;             /* a phone number ... */
    const char     *recipient;      /* ... or a business-scoped user id */
    const char     *idempotency_key;
    const char     *reply_to;       /* wamid */
    const char     *template_name;  /* tag for trackers; from the message */
    const char     *language;
    const char     *variant;
    const char     *auto_reply;     /* set on the worker's own replies */
    int             marketing;
    wa_out_type_t   type;
    json_t         *message;        /* owned */
} wa_outbox_t;

/*
 * Fields of a stream entry, name/value pairs.  0, or -1 with a reason in
 * err (a static string) and nothing to free.
 */
int wa_outbox_parse(wa_outbox_t *o, const char *const *names,
    const char *const *values, const size_t *value_lens, size_t n,
    const char **err);

void wa_outbox_free(wa_outbox_t *o);

/* the JSON body for POST /<phone_number_id>/messages; free() it */
char *wa_outbox_request(const wa_outbox_t *o, const char *callback_data);

/* the user the message goes to: to, else recipient */
const char *wa_outbox_user(const wa_outbox_t *o);

#endif /* WA_OUTBOX_H */
