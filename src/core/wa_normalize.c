/*
 * wa-relay: split one WhatsApp webhook body into normalized events.
 *
 * One event per message, status and error of a "messages" change, per echo
 * of "smb_message_echoes", per message of "history", per preference of
 * "user_preferences", and one per change for every other field, known or
 * not.  Pieces that do not have the envelope's shape are kept as "unparsed"
 * events, so nothing Meta sent is dropped.  The schema is docs/events.md.
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <jansson.h>

#include "wa_build.h"


/* the contact a message is from (or to, for echoes) */
static const wa_json_t *
wa_contact(const wa_json_t *value, const wa_json_t *wa_id)
{
    size_t   i;
    const wa_json_t  *contacts, *c;

    contacts = wa_json_get(value, "contacts");
    if (!WA_IS_ARRAY(contacts)) {
        return NULL;
    }

    wa_foreach(contacts, i, c) {
        if (wa_id != NULL && wa_same(wa_json_get(c, "wa_id"), wa_id)) {
            return c;
        }
    }

    return wa_first(contacts);
}


/* the readable text of a message, whatever its type */
static const wa_json_t *
wa_message_text(const wa_json_t *m)
{
    wa_text_t         type, itype;
    const wa_json_t  *obj, *v;

    type = wa_string(wa_json_get(m, "type"));
    if (type.data == NULL) {
        return NULL;
    }

    if (wa_text_is(type, "edit")) {
        return wa_message_text(wa_path(m, "edit", "message", NULL));
    }

    obj = wa_member(m, type);
    if (!WA_IS_OBJECT(obj)) {
        return NULL;
    }

    if (wa_text_is(type, "interactive")) {
        itype = wa_string(wa_json_get(obj, "type"));
        if (itype.data == NULL) {
            return NULL;
        }

        obj = wa_member(obj, itype);
        v = wa_json_get(obj, "title");
        return v ? v : wa_json_get(obj, "body");
    }

    if (wa_text_is(type, "reaction")) {
        return wa_json_get(obj, "emoji");
    }

    v = wa_json_get(obj, "body");
    if (v == NULL) {
        v = wa_json_get(obj, "caption");
    }

    if (v == NULL) {
        v = wa_json_get(obj, "text");
    }

    return WA_IS_STRING(v) ? v : NULL;
}


/*
 * image, video, audio, document, sticker: what a service needs to fetch
 * the file (the worker's --media-dir does it for them) and to show it
 */
static int
wa_media_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "media_id", obj, "id", NULL, NULL) != 0
        || wa_add_path(bd, "mime_type", obj, "mime_type", NULL, NULL) != 0
        || wa_add_path(bd, "sha256", obj, "sha256", NULL, NULL) != 0
        || wa_add_path(bd, "caption", obj, "caption", NULL, NULL) != 0
        || wa_add_path(bd, "filename", obj, "filename", NULL, NULL) != 0
        || wa_add_path(bd, "voice", obj, "voice", NULL, NULL) != 0
        || wa_add_path(bd, "animated", obj, "animated", NULL, NULL) != 0)
    {
        return -1;
    }

    return 0;
}


static int
wa_location_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "latitude", obj, "latitude", NULL, NULL) != 0
        || wa_add_path(bd, "longitude", obj, "longitude", NULL, NULL) != 0
        || wa_add_path(bd, "name", obj, "name", NULL, NULL) != 0
        || wa_add_path(bd, "address", obj, "address", NULL, NULL) != 0)
    {
        return -1;
    }

    return 0;
}


static int
wa_order_fields(wa_builder_t *bd, const wa_json_t *obj)
{
    if (wa_add_path(bd, "catalog_id", obj, "catalog_id", NULL, NULL) != 0
        || wa_add_count(bd, "order_items_count",
                        wa_json_get(obj, "product_items")) != 0)
    {
        return -1;
    }

    return 0;
}


/* the fields that depend on a message's type */
static int
wa_message_type_fields(wa_builder_t *bd, wa_text_t type, const wa_json_t *obj)
{
    wa_text_t         itype;
    const wa_json_t  *v;

    if (wa_text_is(type, "reaction")) {
        return wa_add_path(bd, "reaction_to", obj, "message_id", NULL, NULL);
    }

    if (wa_text_is(type, "edit") || wa_text_is(type, "revoke")) {
        return wa_add_path(bd, "original_msg_id", obj, "original_message_id",
                           NULL, NULL);
    }

    if (wa_text_is(type, "button")) {
        return wa_add_path(bd, "payload", obj, "payload", NULL, NULL);
    }

    if (wa_text_is(type, "system")) {
        v = wa_json_get(obj, "wa_id");
        return wa_add_json(bd, "new_wa_id", 9,
                           v ? v : wa_json_get(obj, "new_wa_id"));
    }

    if (wa_text_is(type, "image") || wa_text_is(type, "video")
        || wa_text_is(type, "audio") || wa_text_is(type, "document")
        || wa_text_is(type, "sticker"))
    {
        return wa_media_fields(bd, obj);
    }

    if (wa_text_is(type, "location")) {
        return wa_location_fields(bd, obj);
    }

    if (wa_text_is(type, "contacts")) {
        return wa_add_count(bd, "contacts_count", obj);
    }

    if (wa_text_is(type, "order")) {
        return wa_order_fields(bd, obj);
    }

    itype = wa_string(wa_json_get(obj, "type"));

    if (wa_text_is(type, "interactive") && itype.data != NULL) {
        wa_add_text(bd, "interactive_type", 16, itype);

        return wa_add_json(bd, "reply_id", 8,
                           wa_json_get(wa_member(obj, itype), "id"));
    }

    return 0;
}


/* the fields of a message, an echo or a history message */
static int
wa_message_fields(wa_builder_t *bd, const wa_json_t *m)
{
    wa_text_t         type;
    const wa_json_t  *contact, *v;

    type = wa_string(wa_json_get(m, "type"));
    contact = wa_contact(bd->value, wa_json_get(m, "from"));

    v = wa_json_get(m, "from_user_id");
    if (v == NULL && contact != NULL
        && wa_same(wa_json_get(contact, "wa_id"),
                      wa_json_get(m, "from")))
    {
        v = wa_json_get(contact, "user_id");
    }

    if (wa_add_path(bd, "msg_id", m, "id", NULL, NULL) != 0
        || wa_add_path(bd, "from", m, "from", NULL, NULL) != 0
        || wa_add_json(bd, "from_user_id", 12, v) != 0
        || wa_add_path(bd, "to", m, "to", NULL, NULL) != 0
        || wa_add_path(bd, "to_user_id", m, "to_user_id", NULL, NULL) != 0
        || wa_add_path(bd, "type", m, "type", NULL, NULL) != 0
        || wa_add_json(bd, "text", 4, wa_message_text(m)) != 0
        || wa_add_path(bd, "profile_name", contact, "profile", "name",
                       NULL) != 0
        || wa_add_path(bd, "context_id", m, "context", "id", NULL) != 0
        || wa_add_path(bd, "context_from", m, "context", "from", NULL) != 0
        || wa_add_path(bd, "forwarded", m, "context", "forwarded", NULL)
           != 0
        || wa_add_path(bd, "referral_source_type", m, "referral",
                       "source_type", NULL) != 0
        || wa_add_path(bd, "referral_source_id", m, "referral", "source_id",
                       NULL) != 0
        || wa_add_path(bd, "ctwa_clid", m, "referral", "ctwa_clid", NULL)
           != 0
        || wa_add_path(bd, "error_code", wa_first(wa_json_get(m,
                       "errors")), "code", NULL, NULL) != 0)
    {
        return -1;
    }

    if (type.data == NULL) {
        return 0;
    }

    return wa_message_type_fields(bd, type, wa_member(m, type));
}


static int
wa_message(wa_builder_t *bd, const wa_json_t *m, wa_text_t kind)
{
    wa_text_t  id;

    if (!WA_IS_OBJECT(m)) {
        return wa_unparsed(bd, m, "a message is not an object");
    }

    id = wa_string(wa_json_get(m, "id"));
    if (id.len == 0) {
        id = wa_digest_id(bd, m);
        if (id.data == NULL) {
            return -1;
        }
    }

    if (wa_begin(bd, kind, id, wa_json_get(m, "timestamp")) != 0
        || wa_message_fields(bd, m) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_MESSAGES, kind, id, m);
}


/* a status's id: "<wamid>:<status>", or a digest without either */
static wa_text_t
wa_status_id(wa_builder_t *bd, const wa_json_t *s)
{
    char       *p;
    wa_text_t   wamid, status, id;

    wamid = wa_string(wa_json_get(s, "id"));
    status = wa_string(wa_json_get(s, "status"));

    if (wamid.data == NULL || status.data == NULL) {
        return wa_digest_id(bd, s);
    }

    id.len = wamid.len + 1 + status.len;
    p = wa_alloc(bd->batch, id.len + 1);
    id.data = p;

    if (p != NULL) {
        memcpy(p, wamid.data, wamid.len);
        p[wamid.len] = ':';
        memcpy(p + wamid.len + 1, status.data, status.len);
        p[id.len] = '\0';
    }

    return id;
}


static int
wa_status(wa_builder_t *bd, const wa_json_t *s)
{
    wa_text_t         id;
    const wa_json_t  *err;

    if (!WA_IS_OBJECT(s)) {
        return wa_unparsed(bd, s, "a status is not an object");
    }

    id = wa_status_id(bd, s);
    if (id.data == NULL) {
        return -1;
    }

    err = wa_first(wa_json_get(s, "errors"));

    if (wa_begin(bd, wa_text("status"), id, wa_json_get(s, "timestamp"))
           != 0
        || wa_add_path(bd, "msg_id", s, "id", NULL, NULL) != 0
        || wa_add_path(bd, "status", s, "status", NULL, NULL) != 0
        || wa_add_path(bd, "recipient_id", s, "recipient_id", NULL, NULL)
           != 0
        || wa_add_path(bd, "recipient_user_id", s, "recipient_user_id",
                       NULL, NULL) != 0
        || wa_add_path(bd, "recipient_type", s, "recipient_type", NULL,
                       NULL) != 0
        || wa_add_path(bd, "error_code", err, "code", NULL, NULL) != 0
        || wa_add_path(bd, "error_title", err, "title", NULL, NULL) != 0
        || wa_add_path(bd, "pricing_category", s, "pricing", "category",
                       NULL) != 0
        || wa_add_path(bd, "pricing_type", s, "pricing", "type", NULL) != 0
        || wa_add_path(bd, "billable", s, "pricing", "billable", NULL) != 0
        || wa_add_path(bd, "conversation_id", s, "conversation", "id", NULL)
           != 0
        || wa_add_path(bd, "conversation_origin", s, "conversation",
                       "origin", "type") != 0
        || wa_add_path(bd, "conversation_expires", s, "conversation",
                       "expiration_timestamp", NULL) != 0
        || wa_add_path(bd, "biz_opaque_callback_data", s,
                       "biz_opaque_callback_data", NULL, NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_STATUSES, wa_text("status"), id, s);
}


static int
wa_error(wa_builder_t *bd, const wa_json_t *e)
{
    wa_text_t  id;

    id = wa_digest_id(bd, e);

    if (id.data == NULL
        || wa_begin(bd, wa_text("error"), id, NULL) != 0
        || wa_add_path(bd, "error_code", e, "code", NULL, NULL) != 0
        || wa_add_path(bd, "error_title", e, "title", NULL, NULL) != 0
        || wa_add_path(bd, "error_message", e, "message", NULL, NULL) != 0
        || wa_add_path(bd, "error_details", e, "error_data", "details",
                       NULL) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, wa_text("error"), id, e);
}


static int
wa_preference(wa_builder_t *bd, const wa_json_t *p)
{
    wa_text_t  id, top = { NULL, 0 };

    if (!WA_IS_OBJECT(p)) {
        return wa_unparsed(bd, p, "a user preference is not an object");
    }

    id = wa_digest_id(bd, p);

    if (id.data == NULL
        || wa_begin(bd, bd->field, id, wa_json_get(p, "timestamp")) != 0
        || wa_flatten(bd, p, top) != 0)
    {
        return -1;
    }

    return wa_commit_json(bd, WA_STREAM_ACCOUNT, bd->field, id, p);
}


/* every item of value[name]; returns how many, or -1 */
static long
wa_items(wa_builder_t *bd, const char *name,
    int (*handler)(wa_builder_t *bd, const wa_json_t *item))
{
    size_t   i;
    const wa_json_t  *array, *item;

    array = wa_json_get(bd->value, name);
    if (array == NULL) {
        return 0;
    }

    if (!WA_IS_ARRAY(array)) {
        return wa_unparsed(bd, array, "an item list is not an array") ? -1
                                                                       : 1;
    }

    wa_foreach(array, i, item) {
        if (handler(bd, item) != 0) {
            return -1;
        }
    }

    return (long) array->len;
}


static int
wa_inbound(wa_builder_t *bd, const wa_json_t *m)
{
    return wa_message(bd, m, wa_text(WA_KIND_MESSAGE));
}


static int
wa_echo(wa_builder_t *bd, const wa_json_t *m)
{
    return wa_message(bd, m, bd->field);
}


/* history: value.history[].threads[].messages[] */
static long
wa_history(wa_builder_t *bd)
{
    long     n;
    size_t   i, j, k;
    const wa_json_t  *history, *h, *threads, *t, *messages, *m;

    history = wa_json_get(bd->value, "history");
    if (!WA_IS_ARRAY(history)) {
        return 0;
    }

    n = 0;

    wa_foreach(history, i, h) {
        threads = wa_json_get(h, "threads");

        wa_foreach(threads, j, t) {
            messages = wa_json_get(t, "messages");

            wa_foreach(messages, k, m) {
                if (wa_message(bd, m, wa_text("history")) != 0) {
                    return -1;
                }

                n++;
            }
        }
    }

    return n;
}


static int
wa_change(wa_builder_t *bd, const wa_json_t *change)
{
    long              n, total;
    wa_text_t         none = { NULL, 0 };

    if (!WA_IS_OBJECT(change)) {
        bd->field = none;
        bd->value = NULL;
        return wa_unparsed(bd, change, "a change is not an object");
    }

    bd->field = wa_string(wa_json_get(change, "field"));
    bd->value = wa_json_get(change, "value");

    if (bd->field.data == NULL || !WA_IS_OBJECT(bd->value)) {
        bd->value = NULL;
        return wa_unparsed(bd, change,
                           "a change has no field name or no value object");
    }

    total = 0;

    if (wa_text_is(bd->field, "messages")) {
        n = wa_items(bd, "messages", wa_inbound);
        if (n < 0) {
            return -1;
        }

        total += n;

        n = wa_items(bd, "statuses", wa_status);
        if (n < 0) {
            return -1;
        }

        total += n;

        n = wa_items(bd, "errors", wa_error);
        if (n < 0) {
            return -1;
        }

        total += n;

    } else if (wa_text_is(bd->field, "smb_message_echoes")) {
        total = wa_items(bd, "message_echoes", wa_echo);

    } else if (wa_text_is(bd->field, "history")) {
        total = wa_history(bd);

    } else if (wa_text_is(bd->field, "user_preferences")) {
        total = wa_items(bd, "user_preferences", wa_preference);
    }

    if (total < 0) {
        return -1;
    }

    /* a change with no items of its own is still kept, as one event */
    return total ? 0 : wa_change_event(bd);
}


static int
wa_body_unparsed(wa_builder_t *bd, const char *body, size_t len)
{
    wa_text_t    id;
    const char  *why;

    id = wa_digest_hex(bd->batch, &body, &len, 1);

    if (id.data == NULL || wa_begin(bd, wa_text("unparsed"), id, NULL) != 0)
    {
        return -1;
    }

    why = bd->batch->error;
    wa_add(bd, WA_FIELD_ERROR, sizeof(WA_FIELD_ERROR) - 1, why, strlen(why));

    return wa_commit(bd, WA_STREAM_ACCOUNT, wa_text("unparsed"), id, body,
                     len);
}


/*
 * Why a body is not JSON.  simdjson says what kind of fault it found;
 * jansson, run only on this rare path, also says where.
 */
static void
wa_invalid_json(wa_batch_t *b, const char *body, size_t len,
    const char *why)
{
    json_t        *j;
    json_error_t   err;

    j = json_loadb(body, len, JSON_ALLOW_NUL, &err);

    if (j == NULL) {
        snprintf(b->error_buf, sizeof(b->error_buf),
                 "invalid JSON at byte %d: %.100s", err.position, err.text);

    } else {
        json_decref(j);
        snprintf(b->error_buf, sizeof(b->error_buf), "invalid JSON: %.120s",
                 why);
    }

    b->error = b->error_buf;
}


int
wa_normalize(wa_batch_t *b, const char *body, size_t len,
    int64_t received_ms)
{
    int               rc;
    size_t            i, j;
    wa_json_t        *root;
    wa_text_t         object;
    const char       *why;
    wa_builder_t      bd;
    const wa_json_t  *entries, *entry, *changes, *change;

    b->events = NULL;
    b->nevents = 0;
    b->nalloc = 0;
    b->error = NULL;

    /*
     * nginx gives an empty body no buffer: the parser copies the body and
     * raw must point somewhere
     */
    if (body == NULL) {
        body = "";
    }

    memset(&bd, 0, sizeof(wa_builder_t));
    bd.batch = b;
    bd.received = wa_decimal(b, (long long) received_ms, &bd.received_len);
    if (bd.received == NULL) {
        return -1;
    }

    rc = wa_json_parse(b->parser, body, len, b->alloc, b->alloc_data, &root,
                       &why);

    if (rc == WA_JSON_NOMEM) {
        b->error = "out of memory";
        return -1;
    }

    if (rc != WA_JSON_OK) {
        wa_invalid_json(b, body, len, why);
        return wa_body_unparsed(&bd, body, len);
    }

    object = wa_string(wa_json_get(root, "object"));
    entries = wa_json_get(root, "entry");

    if (!wa_text_is(object, "whatsapp_business_account")
        || !WA_IS_ARRAY(entries))
    {
        b->error = "not a WhatsApp envelope (object "
                   "\"whatsapp_business_account\" with an \"entry\" array)";
        return wa_body_unparsed(&bd, body, len);
    }

    wa_foreach(entries, i, entry) {
        bd.entry = entry;
        bd.field.data = NULL;
        bd.field.len = 0;
        bd.value = NULL;

        changes = wa_json_get(entry, "changes");

        if (!WA_IS_OBJECT(entry) || !WA_IS_ARRAY(changes)) {
            bd.entry = NULL;
            if (wa_unparsed(&bd, entry, "an entry has no changes array")
                != 0)
            {
                return -1;
            }

            continue;
        }

        wa_foreach(changes, j, change) {
            if (wa_change(&bd, change) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


const wa_field_t *
wa_event_field(const wa_event_t *ev, const char *name)
{
    return wa_event_fieldn(ev, name, strlen(name));
}


const wa_field_t *
wa_event_fieldn(const wa_event_t *ev, const char *name, size_t len)
{
    return wa_field_find(ev->fields, ev->nfields, name, len);
}


const wa_field_t *
wa_event_repeated_name(const wa_event_t *ev)
{
    size_t  i;

    for (i = 1; i < ev->nfields; i++) {
        if (wa_event_fieldn(ev, ev->fields[i].name, ev->fields[i].name_len)
            != &ev->fields[i])
        {
            return &ev->fields[i];
        }
    }

    return NULL;
}
