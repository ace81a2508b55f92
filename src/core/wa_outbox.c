/*
 * wa-relay: outbox entries.
 *
 * An entry's "message" is a JSON object in Graph API form: the part after
 * "to" ({"type":"text","text":{"body":"hi"}}, a template, interactive,
 * reaction), or {"status":"read","message_id":"wamid..."}.  The sender adds
 * messaging_product, recipient_type, to (or recipient), context and
 * biz_opaque_callback_data.
 */

#include <string.h>

#include "wa_outbox.h"

#define WA_BODY_MAX      4096       /* Meta's limit on a text body */
#define WA_CALLBACK_MAX  512


static const char *
field(const char *const *names, const char *const *values, size_t n,
    const char *name)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return values[i][0] ? values[i] : NULL;
        }
    }

    return NULL;
}


static size_t
field_len(const char *const *names, const size_t *lens, size_t n,
    const char *name)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return lens[i];
        }
    }

    return 0;
}


/* UTF-8 characters, not bytes, as Meta counts them */
static size_t
utf8_chars(const char *s)
{
    size_t  n;

    for (n = 0; *s; s++) {
        n += ((unsigned char) *s & 0xc0) != 0x80;
    }

    return n;
}


static int
check_message(wa_outbox_t *o, const char **err)
{
    json_t      *m, *t, *body;
    const char  *type, *status;

    m = o->message;
    status = json_string_value(json_object_get(m, "status"));

    if (status) {
        if (strcmp(status, "read") != 0
            || !json_is_string(json_object_get(m, "message_id")))
        {
            *err = "a status message must be {\"status\":\"read\","
                   "\"message_id\":...}";
            return -1;
        }

        o->type = WA_OUT_READ;
        return 0;
    }

    type = json_string_value(json_object_get(m, "type"));
    if (type == NULL) {
        *err = "message has no \"type\"";
        return -1;
    }

    if (!json_is_object(json_object_get(m, type))) {
        *err = "message has no object named by its \"type\"";
        return -1;
    }

    if (strcmp(type, "template") == 0) {
        t = json_object_get(m, "template");

        if (json_string_value(json_object_get(t, "name")) == NULL) {
            *err = "template has no \"name\"";
            return -1;
        }

        o->type = WA_OUT_TEMPLATE;

        if (o->template_name == NULL) {
            o->template_name = json_string_value(json_object_get(t, "name"));
        }

        if (o->language == NULL) {
            o->language = json_string_value(
                json_object_get(json_object_get(t, "language"), "code"));
        }

        return 0;
    }

    if (strcmp(type, "reaction") == 0) {
        o->type = WA_OUT_REACTION;
        return 0;
    }

    if (strcmp(type, "text") == 0) {
        body = json_object_get(json_object_get(m, "text"), "body");

        if (!json_is_string(body) || json_string_length(body) == 0) {
            *err = "text has no \"body\"";
            return -1;
        }

        if (utf8_chars(json_string_value(body)) > WA_BODY_MAX) {
            *err = "text body is over 4096 characters";
            return -1;
        }
    }

    o->type = WA_OUT_MESSAGE;

    return 0;
}


int
wa_outbox_parse(wa_outbox_t *o, const char *const *names,
    const char *const *values, const size_t *value_lens, size_t n,
    const char **err)
{
    const char    *message, *marketing;
    json_error_t   jerr;

    memset(o, 0, sizeof(*o));

    o->phone_number_id = field(names, values, n, "phone_number_id");
    o->to = field(names, values, n, "to");
    o->recipient = field(names, values, n, "recipient");
    o->idempotency_key = field(names, values, n, "idempotency_key");
    o->reply_to = field(names, values, n, "reply_to");
    o->template_name = field(names, values, n, "template");
    o->language = field(names, values, n, "language");
    o->variant = field(names, values, n, "variant");
    o->auto_reply = field(names, values, n, "auto_reply");
    marketing = field(names, values, n, "marketing");
    o->marketing = marketing && (strcmp(marketing, "1") == 0
                                 || strcmp(marketing, "true") == 0);

    if (o->phone_number_id == NULL) {
        *err = "no phone_number_id";
        return -1;
    }

    /* it becomes part of the URL path: digits only, nothing to traverse */
    if (strspn(o->phone_number_id, "0123456789")
            != strlen(o->phone_number_id)
        || strlen(o->phone_number_id) > 32)
    {
        *err = "phone_number_id is not a number";
        return -1;
    }

    message = field(names, values, n, "message");
    if (message == NULL) {
        *err = "no message";
        return -1;
    }

    o->message = json_loadb(message, field_len(names, value_lens, n,
                                               "message"),
                            JSON_REJECT_DUPLICATES, &jerr);

    if (!json_is_object(o->message)) {
        *err = "message is not a JSON object";
        wa_outbox_free(o);
        return -1;
    }

    if (check_message(o, err) != 0) {
        wa_outbox_free(o);
        return -1;
    }

    if (o->type != WA_OUT_READ && o->to == NULL && o->recipient == NULL) {
        *err = "neither to nor recipient";
        wa_outbox_free(o);
        return -1;
    }

    return 0;
}


void
wa_outbox_free(wa_outbox_t *o)
{
    json_decref(o->message);
    o->message = NULL;
}


const char *
wa_outbox_user(const wa_outbox_t *o)
{
    return o->to ? o->to : o->recipient;
}


char *
wa_outbox_request(const wa_outbox_t *o, const char *callback_data)
{
    char    *s;
    json_t  *req;

    req = json_deep_copy(o->message);
    if (req == NULL) {
        return NULL;
    }

    json_object_set_new(req, "messaging_product", json_string("whatsapp"));

    if (o->type != WA_OUT_READ) {
        json_object_set_new(req, "recipient_type",
                            json_string("individual"));

        if (o->to) {
            json_object_set_new(req, "to", json_string(o->to));

        } else {
            json_object_set_new(req, "recipient", json_string(o->recipient));
        }

        if (o->reply_to) {
            json_object_set_new(req, "context",
                                json_pack("{s:s}", "message_id",
                                          o->reply_to));
        }

        if (callback_data && strlen(callback_data) <= WA_CALLBACK_MAX) {
            json_object_set_new(req, "biz_opaque_callback_data",
                                json_string(callback_data));
        }
    }

    s = json_dumps(req, JSON_COMPACT);
    json_decref(req);

    return s;
}
