/*
 * wa-relay: what the module, the worker and the tests share of the
 * streams: their names and the names of the fields the normalizer sets
 * itself (docs/events.md).  The Lua of redis/ is checked against this file
 * by t/worker/w60-contract.t: every field it reads is declared here, or is
 * one of Meta's own names that docs/events.md lists.
 */

#ifndef WA_STREAMS_H
#define WA_STREAMS_H

typedef enum {
    WA_STREAM_MESSAGES = 0,
    WA_STREAM_STATUSES,
    WA_STREAM_ACCOUNT,
    WA_STREAM_COUNT
} wa_stream_t;

/* "<prefix>:<name>", the prefix being whatsapp_stream_prefix / --prefix */
extern const char *wa_stream_names[WA_STREAM_COUNT];

#define WA_STREAM_DEAD      "dead"
#define WA_STREAM_OUTBOX    "outbox"

/*
 * "<partition's prefix>:migrating", a key never written that every call
 * of a partition names: while its slot moves, Redis refuses the call
 * rather than run it on half of the partition (docs/redis.md)
 */
#define WA_KEY_MIGRATING    "migrating"

/*
 * The latency histograms' upper bounds, microseconds, of the module's
 * and the worker's metrics alike (+Inf is the count)
 */
#define WA_BUCKETS          14
#define WA_BUCKETS_US       100, 250, 500, 1000, 2500, 5000, 10000, 25000,   \
                            50000, 100000, 250000, 500000, 1000000, 2500000

/*
 * The version of the entries' format (docs/events.md, "Versions"): every
 * entry of every stream carries it in the field v.  It goes up when a field
 * changes meaning or goes away, never for a field added.
 */
#define WA_EVENTS_V                    "1"

/* the fields of every event, set by the normalizer */
#define WA_FIELD_KIND                  "kind"
#define WA_FIELD_V                     "v"
#define WA_FIELD_FIELD                 "field"
#define WA_FIELD_EVENT_ID              "event_id"
#define WA_FIELD_WABA_ID               "waba_id"
#define WA_FIELD_PHONE_NUMBER_ID       "phone_number_id"
#define WA_FIELD_DISPLAY_PHONE_NUMBER  "display_phone_number"
#define WA_FIELD_TS                    "ts"
#define WA_FIELD_RECEIVED_AT           "received_at"
#define WA_FIELD_RAW                   "raw"
#define WA_FIELD_ERROR                 "error"

/* fields of some kinds that the worker reads */
#define WA_FIELD_TEXT                  "text"

/* added by the worker to what it passes its state function */
#define WA_FIELD_KEYWORD               "keyword"

#define WA_KIND_MESSAGE                "message"
#define WA_KIND_ECHO                   "smb_message_echoes"
#define WA_KIND_HISTORY                "history"

/*
 * Every other name the normalizer gives a field of its own (messages,
 * statuses, errors); a name not here comes from Meta's payload.
 */
#define WA_FIELDS_NAMED(X)                                                    \
    X(msg_id) X(from) X(from_user_id) X(to) X(to_user_id) X(type)             \
    X(profile_name) X(context_id) X(context_from) X(forwarded)                \
    X(referral_source_type) X(referral_source_id) X(ctwa_clid)                \
    X(error_code) X(error_title) X(error_message) X(error_details)            \
    X(reaction_to) X(original_msg_id) X(payload) X(new_wa_id)                 \
    X(interactive_type) X(reply_id) X(status) X(recipient_id)                 \
    X(recipient_user_id) X(recipient_type) X(pricing_category)                \
    X(pricing_type) X(billable) X(conversation_id) X(conversation_origin)     \
    X(conversation_expires) X(biz_opaque_callback_data)                      \
    X(media_id) X(mime_type) X(sha256) X(caption) X(filename) X(voice)       \
    X(animated) X(latitude) X(longitude) X(name) X(address)                  \
    X(contacts_count) X(catalog_id) X(order_items_count)

#endif /* WA_STREAMS_H */
