/* wa-relay: unit tests of the normalizer. */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "wa_normalize.h"


/* a throwaway arena: every block is freed at once */
typedef struct {
    void    **blocks;
    size_t    n;
    size_t    cap;
} arena_t;


static void *
arena_alloc(void *data, size_t size)
{
    arena_t  *a = data;
    void     *p;

    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->blocks = realloc(a->blocks, a->cap * sizeof(void *));
        ck_assert_ptr_nonnull(a->blocks);
    }

    p = malloc(size);
    a->blocks[a->n++] = p;

    return p;
}


static void
arena_free(arena_t *a)
{
    size_t  i;

    for (i = 0; i < a->n; i++) {
        free(a->blocks[i]);
    }

    free(a->blocks);
    memset(a, 0, sizeof(arena_t));
}


static arena_t            arena;
static wa_batch_t         batch;
static wa_json_parser_t  *parser;


static wa_batch_t *
normalize(const char *body, size_t len)
{
    arena_free(&arena);

    if (parser == NULL) {
        parser = wa_json_parser_create();
        ck_assert_ptr_nonnull(parser);
    }

    batch.alloc = arena_alloc;
    batch.alloc_data = &arena;
    batch.parser = parser;

    ck_assert_int_eq(wa_normalize(&batch, body, len, 1700000000123LL), 0);

    return &batch;
}


static wa_batch_t *
normalize_str(const char *body)
{
    return normalize(body, strlen(body));
}


static void
teardown(void)
{
    arena_free(&arena);
    wa_json_parser_destroy(parser);
    parser = NULL;
}


/* the value of a field as a NUL-terminated string, or NULL */
static const char *
field(const wa_event_t *ev, const char *name)
{
    static char        buf[8][256];
    static int         slot;
    const wa_field_t  *f;
    char              *p;

    f = wa_event_field(ev, name);
    if (f == NULL) {
        return NULL;
    }

    p = buf[slot++ % 8];
    snprintf(p, 256, "%.*s", (int) f->len, f->data);

    return p;
}


#define ck_field(ev, name, want)                                              \
    ck_assert_str_eq(field(ev, name) ? field(ev, name) : "(none)", want)


/* no event holds a field name twice: the worker would keep the last one */
static void
ck_names_unique(const wa_event_t *ev, const char *where)
{
    const wa_field_t  *f;

    f = wa_event_repeated_name(ev);

    ck_assert_msg(f == NULL, "%s: field \"%.*s\" twice", where,
                  f ? (int) f->name_len : 0, f ? f->name : "");
}


static const char *vector_body =
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":"
    "\"102290129340398\",\"changes\":[{\"value\":{\"messaging_product\":"
    "\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550783881\","
    "\"phone_number_id\":\"106540352242922\"},\"contacts\":[{\"profile\":"
    "{\"name\":\"Jos\\u00e9\"},\"wa_id\":\"16505551234\"}],\"messages\":"
    "[{\"from\":\"16505551234\",\"id\":\"wamid.TEST\",\"timestamp\":"
    "\"1749416383\",\"type\":\"text\",\"text\":{\"body\":"
    "\"caf\\u00e9 \\/ ok\"}}]},\"field\":\"messages\"}]}]}";


START_TEST(message_fields)
{
    wa_batch_t  *b;
    wa_event_t  *ev;

    b = normalize_str(vector_body);

    ck_assert_ptr_null(b->error);
    ck_assert_int_eq(b->nevents, 1);

    ev = &b->events[0];
    ck_assert_int_eq(ev->stream, WA_STREAM_MESSAGES);
    ck_field(ev, "kind", "message");
    ck_field(ev, "field", "messages");
    ck_field(ev, "event_id", "wamid.TEST");
    ck_field(ev, "waba_id", "102290129340398");
    ck_field(ev, "phone_number_id", "106540352242922");
    ck_field(ev, "display_phone_number", "15550783881");
    ck_field(ev, "ts", "1749416383");
    ck_field(ev, "received_at", "1700000000123");
    ck_field(ev, "msg_id", "wamid.TEST");
    ck_field(ev, "from", "16505551234");
    ck_field(ev, "type", "text");
    ck_field(ev, "text", "caf\xc3\xa9 / ok");
    ck_field(ev, "profile_name", "Jos\xc3\xa9");
    ck_field(ev, "raw", "{\"from\":\"16505551234\",\"id\":\"wamid.TEST\","
             "\"timestamp\":\"1749416383\",\"type\":\"text\",\"text\":"
             "{\"body\":\"caf\xc3\xa9 / ok\"}}");
    ck_assert_ptr_null(wa_event_field(ev, "context_id"));
}
END_TEST


/* one message of the given type object, in a whole body */
static wa_event_t *
one_message(const char *type, const char *obj)
{
    char         body[2048];
    wa_batch_t  *b;

    snprintf(body, sizeof(body),
             "{\"object\":\"whatsapp_business_account\",\"entry\":[{"
             "\"id\":\"1\",\"changes\":[{\"field\":\"messages\","
             "\"value\":{\"metadata\":{\"phone_number_id\":\"2\"},"
             "\"messages\":[{\"from\":\"3\",\"id\":\"wamid.%s\","
             "\"timestamp\":\"4\",\"type\":\"%s\",\"%s\":%s}]}}]}]}",
             type, type, type, obj);

    b = normalize_str(body);
    ck_assert_ptr_null(b->error);
    ck_assert_int_eq(b->nevents, 1);
    ck_names_unique(&b->events[0], type);

    return &b->events[0];
}


START_TEST(typed_fields)
{
    wa_event_t  *ev;

    ev = one_message("document", "{\"id\":\"77\",\"mime_type\":"
                     "\"application/pdf\",\"sha256\":\"q80=\","
                     "\"caption\":\"the bill\",\"filename\":\"b.pdf\"}");
    ck_field(ev, "v", WA_EVENTS_V);
    ck_field(ev, "media_id", "77");
    ck_field(ev, "mime_type", "application/pdf");
    ck_field(ev, "sha256", "q80=");
    ck_field(ev, "caption", "the bill");
    ck_field(ev, "filename", "b.pdf");
    ck_field(ev, "text", "the bill");
    ck_assert_ptr_null(wa_event_field(ev, "voice"));

    ev = one_message("audio", "{\"id\":\"78\",\"voice\":true}");
    ck_field(ev, "media_id", "78");
    ck_field(ev, "voice", "true");

    ev = one_message("sticker", "{\"id\":\"79\",\"animated\":false}");
    ck_field(ev, "animated", "false");

    ev = one_message("location", "{\"latitude\":-23.5505,\"longitude\":"
                     "-46.6333,\"name\":\"Praça\",\"address\":\"SP\"}");
    ck_field(ev, "latitude", "-23.5505");
    ck_field(ev, "longitude", "-46.6333");
    ck_field(ev, "name", "Praça");
    ck_field(ev, "address", "SP");
    ck_assert_ptr_null(wa_event_field(ev, "media_id"));

    ev = one_message("contacts", "[{\"name\":{}},{\"name\":{}}]");
    ck_field(ev, "contacts_count", "2");

    ev = one_message("order", "{\"catalog_id\":\"9\",\"product_items\":"
                     "[{},{},{}]}");
    ck_field(ev, "catalog_id", "9");
    ck_field(ev, "order_items_count", "3");

    /* a media id that is not a scalar is left in raw, not made up */
    ev = one_message("image", "{\"id\":{\"x\":1}}");
    ck_assert_ptr_null(wa_event_field(ev, "media_id"));
}
END_TEST


START_TEST(statuses_errors_and_ids)
{
    wa_batch_t  *b;

    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":"
        "{\"phone_number_id\":\"9\"},\"statuses\":[{\"id\":\"wamid.A\","
        "\"status\":\"failed\",\"timestamp\":\"5\",\"recipient_id\":\"7\","
        "\"errors\":[{\"code\":131047,\"title\":\"Re-engagement\"}],"
        "\"biz_opaque_callback_data\":\"ob-1\",\"pricing\":{\"category\":"
        "\"marketing\",\"billable\":true}},{\"id\":\"wamid.A\",\"status\":"
        "\"read\",\"timestamp\":\"6\"}],\"errors\":[{\"code\":131000,"
        "\"title\":\"Something went wrong\"}]}}]}]}");

    ck_assert_ptr_null(b->error);
    ck_assert_int_eq(b->nevents, 3);

    ck_assert_int_eq(b->events[0].stream, WA_STREAM_STATUSES);
    ck_field(&b->events[0], "event_id", "wamid.A:failed");
    ck_field(&b->events[0], "status", "failed");
    ck_field(&b->events[0], "error_code", "131047");
    ck_field(&b->events[0], "pricing_category", "marketing");
    ck_field(&b->events[0], "billable", "true");
    ck_field(&b->events[0], "biz_opaque_callback_data", "ob-1");
    ck_field(&b->events[1], "event_id", "wamid.A:read");

    ck_assert_int_eq(b->events[2].stream, WA_STREAM_ACCOUNT);
    ck_field(&b->events[2], "kind", "error");
    ck_field(&b->events[2], "error_code", "131000");
    ck_assert_int_eq(b->events[2].event_id_len, 32);
}
END_TEST


START_TEST(other_fields_flattened)
{
    wa_batch_t  *b;
    char         id[64];

    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"55\","
        "\"time\":1751247548,\"changes\":[{\"field\":"
        "\"message_template_status_update\",\"value\":{\"event\":\"PAUSED\","
        "\"message_template_id\":1689556908129832,\"message_template_name\":"
        "\"order\",\"message_template_language\":\"en_US\",\"reason\":null,"
        "\"other_info\":{\"title\":\"FIRST_PAUSE\"},\"kind\":\"x\"}}]}]}");

    ck_assert_int_eq(b->nevents, 1);
    ck_assert_int_eq(b->events[0].stream, WA_STREAM_ACCOUNT);
    ck_field(&b->events[0], "kind", "message_template_status_update");
    ck_field(&b->events[0], "ts", "1751247548");
    ck_field(&b->events[0], "event", "PAUSED");
    ck_field(&b->events[0], "message_template_id", "1689556908129832");
    ck_field(&b->events[0], "other_info_title", "FIRST_PAUSE");
    ck_field(&b->events[0], "value_kind", "x");
    ck_assert_ptr_null(wa_event_field(&b->events[0], "reason"));
    snprintf(id, sizeof(id), "%s", b->events[0].event_id);

    /* the same change with its keys in another order: the same id */
    b = normalize_str(
        "{\"entry\":[{\"changes\":[{\"value\":{\"kind\":\"x\",\"reason\":null,"
        "\"other_info\":{\"title\":\"FIRST_PAUSE\"},\"message_template_"
        "language\":\"en_US\",\"message_template_name\":\"order\",\"message_"
        "template_id\":1689556908129832,\"event\":\"PAUSED\"},\"field\":"
        "\"message_template_status_update\"}],\"time\":1751247548,\"id\":"
        "\"55\"}],\"object\":\"whatsapp_business_account\"}");

    ck_assert_int_eq(b->nevents, 1);
    ck_assert_str_eq(b->events[0].event_id, id);

    /* a later event of the same shape is another event */
    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"55\","
        "\"time\":1751247549,\"changes\":[{\"field\":"
        "\"message_template_status_update\",\"value\":{\"event\":\"PAUSED\","
        "\"message_template_id\":1689556908129832,\"message_template_name\":"
        "\"order\",\"message_template_language\":\"en_US\",\"reason\":null,"
        "\"other_info\":{\"title\":\"FIRST_PAUSE\"},\"kind\":\"x\"}}]}]}");

    ck_assert_str_ne(b->events[0].event_id, id);
}
END_TEST


START_TEST(unparsed_bodies)
{
    wa_batch_t  *b;
    const char  *junk = "{\"object\": \"whatsapp_business_account\", \"entry\"";

    b = normalize_str(junk);
    ck_assert_ptr_nonnull(b->error);
    ck_assert_int_eq(b->nevents, 1);
    ck_assert_int_eq(b->events[0].stream, WA_STREAM_ACCOUNT);
    ck_field(&b->events[0], "kind", "unparsed");
    ck_field(&b->events[0], "raw", junk);

    b = normalize_str("{\"object\":\"page\",\"entry\":[]}");
    ck_assert_ptr_nonnull(strstr(b->error, "not a WhatsApp envelope"));
    ck_assert_int_eq(b->nevents, 1);

    b = normalize("", 0);
    ck_assert_int_eq(b->nevents, 1);
    ck_field(&b->events[0], "kind", "unparsed");

    /* as nginx passes an empty body: no buffer at all */
    b = normalize(NULL, 0);
    ck_assert_int_eq(b->nevents, 1);
    ck_field(&b->events[0], "kind", "unparsed");
    ck_assert_ptr_nonnull(wa_event_field(&b->events[0], "raw")->data);

    /* NUL bytes inside strings are kept, not cut */
    b = normalize_str("{\"object\":\"whatsapp_business_account\",\"entry\":"
                      "[{\"changes\":[{\"field\":\"x\",\"value\":{\"a\":"
                      "\"1\\u00002\"}}]}]}");
    ck_assert_ptr_null(b->error);
    ck_assert_int_eq(wa_event_field(&b->events[0], "a")->len, 3);
}
END_TEST


START_TEST(bad_pieces_are_kept_beside_good_ones)
{
    wa_batch_t  *b;

    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[7,{\"id\":\"1\","
        "\"changes\":[\"x\",{\"field\":\"messages\",\"value\":{\"messages\":"
        "[{\"id\":\"wamid.1\",\"type\":\"text\",\"text\":{\"body\":\"hi\"}},"
        "42]}},{\"field\":\"messages\",\"value\":{\"statuses\":{}}}]}]}");

    ck_assert_ptr_nonnull(b->error);
    ck_assert_int_eq(b->nevents, 5);
    ck_field(&b->events[0], "kind", "unparsed");   /* 7 */
    ck_field(&b->events[0], "raw", "7");
    ck_field(&b->events[1], "kind", "unparsed");   /* "x" */
    ck_field(&b->events[2], "kind", "message");
    ck_field(&b->events[3], "kind", "unparsed");   /* 42 */
    ck_field(&b->events[4], "kind", "unparsed");   /* statuses: {} */
}
END_TEST


START_TEST(large_batch)
{
    wa_batch_t  *b;
    char        *body, *p;
    int          i;

    body = malloc(1000 * 128 + 256);
    p = body + sprintf(body, "{\"object\":\"whatsapp_business_account\","
                       "\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"
                       "\"messages\",\"value\":{\"statuses\":[");

    for (i = 0; i < 1000; i++) {
        p += sprintf(p, "%s{\"id\":\"wamid.%d\",\"status\":\"sent\","
                     "\"timestamp\":\"%d\"}", i ? "," : "", i, i);
    }

    strcpy(p, "]}}]}]}");

    b = normalize_str(body);
    free(body);

    ck_assert_int_eq(b->nevents, 1000);
    ck_field(&b->events[999], "event_id", "wamid.999:sent");
}
END_TEST


#define ENVELOPE(value)                                                     \
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","   \
    "\"time\":5,\"changes\":[{\"field\":\"x\",\"value\":" value "}]}]}"


/* a value with more scalars than an event holds: the first ones, then raw */
START_TEST(field_limit)
{
    int                i;
    char               body[4096], *p;
    wa_batch_t        *b;
    const wa_field_t  *raw;

    p = body + sprintf(body, "{\"object\":\"whatsapp_business_account\","
                       "\"entry\":[{\"id\":\"1\",\"time\":5,"
                       "\"changes\":[{\"field\":\"x\",\"value\":{");
    for (i = 0; i < 2 * WA_EVENT_MAX_FIELDS; i++) {
        p += sprintf(p, "%s\"f%d\":\"v%d\"", i ? "," : "", i, i);
    }
    strcpy(p, "}}]}]}");

    b = normalize_str(body);
    ck_assert_int_eq(b->nevents, 1);
    ck_assert_int_eq(b->events[0].nfields, WA_EVENT_MAX_FIELDS + 1);
    ck_assert_str_eq(b->events[0].fields[WA_EVENT_MAX_FIELDS].name, "raw");
    ck_field(&b->events[0], "f0", "v0");

    raw = wa_event_field(&b->events[0], "raw");
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_gt(raw->len, 12);
    ck_assert_int_eq(memcmp(raw->data + raw->len - 12,
                            "\"f95\":\"v95\"}", 12), 0);
}
END_TEST


/* what the switch of parser (jansson to simdjson) must not change */
START_TEST(parser_edges)
{
    int          i, n;
    char        *body, *p;
    wa_batch_t  *b;

    /* the digest of an item without an id: SHA-256 of "x\0", ["1",5] and
     * the value with its keys sorted, as computed outside the project */
    b = normalize_str(ENVELOPE("{\"b\":2,\"a\":\"1\"}"));
    ck_assert_int_eq(b->nevents, 1);
    ck_field(&b->events[0], "event_id", "a604a6ef2014b27889a88f35ea698ca9");
    ck_field(&b->events[0], "raw", "{\"b\":2,\"a\":\"1\"}");

    /* a name given twice: one field, the last value; raw keeps both */
    b = normalize_str(ENVELOPE("{\"a\":\"1\",\"a\":\"2\"}"));
    ck_field(&b->events[0], "a", "2");
    ck_field(&b->events[0], "raw", "{\"a\":\"1\",\"a\":\"2\"}");

    n = 0;
    for (i = 0; i < (int) b->events[0].nfields; i++) {
        n += strcmp(b->events[0].fields[i].name, "a") == 0;
    }

    ck_assert_int_eq(n, 1);

    /* numbers: past int64, real, negative, int64's ends, zero */
    b = normalize_str(ENVELOPE("{\"u\":18446744073709551615,\"r\":1.50,"
                               "\"i\":-7,\"min\":-9223372036854775808,"
                               "\"max\":9223372036854775807,\"z\":0}"));
    ck_assert_ptr_null(b->error);
    ck_field(&b->events[0], "u", "18446744073709551615");
    ck_field(&b->events[0], "r", "1.5");
    ck_field(&b->events[0], "i", "-7");
    ck_field(&b->events[0], "min", "-9223372036854775808");
    ck_field(&b->events[0], "max", "9223372036854775807");
    ck_field(&b->events[0], "z", "0");

    /* invalid UTF-8 in a string: not JSON, kept whole, and where */
    b = normalize_str(ENVELOPE("{\"a\":\"\xff\"}"));
    ck_assert_int_eq(b->nevents, 1);
    ck_field(&b->events[0], "kind", "unparsed");
    ck_assert_ptr_nonnull(strstr(b->error, "invalid JSON at byte"));

    /* deeper than simdjson's 1024 levels (jansson took 2048): unparsed,
     * with simdjson's reason */
    body = malloc(8192);
    p = body + sprintf(body, "{\"object\":\"whatsapp_business_account\","
                       "\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"
                       "\"x\",\"value\":{\"a\":");
    for (i = 0; i < 1500; i++) {
        *p++ = '[';
    }
    for (i = 0; i < 1500; i++) {
        *p++ = ']';
    }
    strcpy(p, "}}]}]}");

    b = normalize_str(body);
    ck_field(&b->events[0], "kind", "unparsed");
    ck_assert_ptr_nonnull(strstr(b->error, "invalid JSON: "));
    free(body);

    /* after a body past the parser's 1 MB, a small one is read right (the
     * parser is renewed; ASan sees any use of the old one) */
    body = malloc(1200 * 1024);
    p = body + sprintf(body, "{\"object\":\"whatsapp_business_account\","
                       "\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"
                       "\"x\",\"value\":{\"pad\":\"");
    memset(p, 'a', 1100 * 1024);
    strcpy(p + 1100 * 1024, "\"}}]}]}");

    b = normalize_str(body);
    ck_assert_int_eq(wa_event_field(&b->events[0], "pad")->len, 1100 * 1024);
    free(body);

    b = normalize_str(vector_body);
    ck_field(&b->events[0], "text", "caf\xc3\xa9 / ok");
}
END_TEST


/*
 * A name the normalizer sets itself cannot come from the body, at any
 * depth: {"event":{"id":"X"}} would otherwise be a second event_id.
 */
START_TEST(common_fields_not_injected)
{
    wa_batch_t  *b;
    wa_event_t  *ev;

    b = normalize_str(ENVELOPE(
        "{\"event\":{\"id\":\"X\"},\"waba\":{\"id\":\"Y\"},\"phone\":"
        "{\"number_id\":\"Z\"},\"received\":{\"at\":\"1\"},\"display\":"
        "{\"phone_number\":\"D\"},\"kind\":\"K\",\"a_b\":\"top\",\"a\":"
        "{\"b\":\"nested\"},\"value\":{\"kind\":\"V\"},\"value_kind\":"
        "\"W\"}"));

    ck_assert_int_eq(b->nevents, 1);
    ev = &b->events[0];
    ck_names_unique(ev, "injection");

    ck_field(ev, "kind", "x");
    ck_field(ev, "waba_id", "1");
    ck_field(ev, "received_at", "1700000000123");
    ck_assert_int_eq(wa_event_field(ev, "event_id")->len, 32);
    ck_assert_ptr_null(wa_event_field(ev, "phone_number_id"));
    ck_assert_ptr_null(wa_event_field(ev, "display_phone_number"));

    ck_field(ev, "value_event_id", "X");
    ck_field(ev, "value_waba_id", "Y");
    ck_field(ev, "value_phone_number_id", "Z");
    ck_field(ev, "value_received_at", "1");
    ck_field(ev, "value_display_phone_number", "D");
    ck_field(ev, "value_kind", "K");

    /* the first of two ways to one name wins; the other stays in raw */
    ck_field(ev, "a_b", "top");

    /* a user preference is flattened by the same rule */
    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"user_preferences\",\"value\":{"
        "\"user_preferences\":[{\"wa_id\":\"7\",\"event\":{\"id\":\"E\"},"
        "\"ts\":\"5\"}]}}]}]}");
    ck_assert_int_eq(b->nevents, 1);
    ck_names_unique(&b->events[0], "preference");
    ck_field(&b->events[0], "value_event_id", "E");
    ck_field(&b->events[0], "value_ts", "5");
}
END_TEST


#define ck_bytes(f, want)                                                     \
    do {                                                                      \
        ck_assert_ptr_nonnull(f);                                             \
        ck_assert_int_eq((f)->len, sizeof(want) - 1);                         \
        ck_assert_int_eq(memcmp((f)->data, want, sizeof(want) - 1), 0);       \
    } while (0)


/* every value from the body is carried with its length, NULs and all */
START_TEST(nul_in_ids_and_texts)
{
    wa_batch_t  *b;
    wa_event_t  *ev;

    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"messages\",\"value\":{\"messages\":["
        "{\"id\":\"wamid.X\\u0000a\",\"type\":\"text\",\"text\":{\"body\":"
        "\"hi\\u0000there\"}},"
        "{\"id\":\"wamid.X\\u0000b\",\"type\":\"text\",\"text\":{\"body\":"
        "\"x\"}},"
        "{\"id\":\"wamid.Y\",\"type\":\"text\\u0000z\",\"text\":{\"body\":"
        "\"not the text\"}},"
        "{\"id\":\"\\u0000\",\"type\":\"text\"}],"
        "\"statuses\":[{\"id\":\"wamid.S\\u0000q\",\"status\":\"read\\u0000\"}"
        "]}}]}]}");

    ck_assert_ptr_null(b->error);
    ck_assert_int_eq(b->nevents, 5);

    ev = &b->events[0];
    ck_assert_int_eq(ev->event_id_len, 9);
    ck_assert_int_eq(memcmp(ev->event_id, "wamid.X\0a", 9), 0);
    ck_bytes(wa_event_field(ev, "event_id"), "wamid.X\0a");
    ck_bytes(wa_event_field(ev, "msg_id"), "wamid.X\0a");
    ck_bytes(wa_event_field(ev, "text"), "hi\0there");

    ev = &b->events[1];
    ck_assert_int_eq(ev->event_id_len, 9);
    ck_assert_int_eq(memcmp(ev->event_id, "wamid.X\0b", 9), 0);

    /* a type with a NUL is not "text": no text taken from the text object */
    ev = &b->events[2];
    ck_bytes(wa_event_field(ev, "type"), "text\0z");
    ck_assert_ptr_null(wa_event_field(ev, "text"));

    /* an id of one NUL is an id, not an empty one */
    ev = &b->events[3];
    ck_assert_int_eq(ev->event_id_len, 1);
    ck_assert_int_eq(ev->event_id[0], '\0');

    ev = &b->events[4];
    ck_assert_int_eq(ev->event_id_len, 15);
    ck_assert_int_eq(memcmp(ev->event_id, "wamid.S\0q:read\0", 15), 0);

    /* a field name with a NUL is not "messages": one change event */
    b = normalize_str(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"messages\\u0000\",\"value\":{\"messages\":"
        "[{\"id\":\"wamid.Z\"}],\"n\\u0000m\":\"v\"}}]}]}");
    ck_assert_int_eq(b->nevents, 1);
    ev = &b->events[0];
    ck_assert_int_eq(ev->stream, WA_STREAM_ACCOUNT);
    ck_assert_int_eq(ev->kind_len, 9);
    ck_assert_int_eq(memcmp(ev->kind, "messages\0", 9), 0);
    ck_bytes(wa_event_field(ev, "kind"), "messages\0");
    ck_bytes(wa_event_fieldn(ev, "n\0m", 3), "v");

    /* nor is an object that is not WhatsApp's with a NUL in its name */
    b = normalize_str("{\"object\":\"whatsapp_business_account\\u0000\","
                      "\"entry\":[]}");
    ck_field(&b->events[0], "kind", "unparsed");
}
END_TEST


/*
 * A change whose value has WA_FLATTEN_KEYS keys (1000 unless set),
 * normalized once.  t/unit/flatten.t counts the instructions wa_normalize()
 * executes for it under callgrind, at 1k and at 100k keys: flattening a
 * value is linear when the count per key stays the same.  Counted, not
 * timed: the same count on any machine, whatever its speed or load.
 */
START_TEST(flatten_once)
{
    int          i, n;
    char        *body, *p;
    const char  *keys;
    wa_batch_t  *b;

    keys = getenv("WA_FLATTEN_KEYS");
    n = keys ? atoi(keys) : 1000;
    ck_assert_int_gt(n, WA_EVENT_MAX_FIELDS);

    body = malloc((size_t) n * 32 + 256);
    ck_assert_ptr_nonnull(body);

    p = body + sprintf(body, "{\"object\":\"whatsapp_business_account\","
                       "\"entry\":[{\"id\":\"1\",\"time\":5,\"changes\":"
                       "[{\"field\":\"x\",\"value\":{");
    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    }
    strcpy(p, "}}]}]}");

    b = normalize_str(body);

    ck_assert_int_eq(b->nevents, 1);
    ck_assert_int_eq(b->events[0].nfields, WA_EVENT_MAX_FIELDS + 1);
    free(body);
}
END_TEST


/* how many events a body must give, counted without the normalizer */
static size_t
expected_events(json_t *body)
{
    size_t   i, j, k, n, items;
    json_t  *entry, *change, *v, *h, *t;
    const char *field;

    n = 0;

    json_array_foreach(json_object_get(body, "entry"), i, entry) {
        json_array_foreach(json_object_get(entry, "changes"), j, change) {
            field = json_string_value(json_object_get(change, "field"));
            v = json_object_get(change, "value");
            items = 0;

            if (strcmp(field, "messages") == 0) {
                items = json_array_size(json_object_get(v, "messages"))
                        + json_array_size(json_object_get(v, "statuses"))
                        + json_array_size(json_object_get(v, "errors"));

            } else if (strcmp(field, "smb_message_echoes") == 0) {
                items = json_array_size(json_object_get(v, "message_echoes"));

            } else if (strcmp(field, "user_preferences") == 0) {
                items = json_array_size(json_object_get(v,
                                                        "user_preferences"));

            } else if (strcmp(field, "history") == 0) {
                json_array_foreach(json_object_get(v, "history"), k, h) {
                    size_t  m;

                    json_array_foreach(json_object_get(h, "threads"), m, t) {
                        items += json_array_size(json_object_get(t,
                                                              "messages"));
                    }
                }
            }

            n += items ? items : 1;
        }
    }

    return n;
}


START_TEST(every_fixture)
{
    DIR            *dir;
    char            path[1024];
    char           *body;
    size_t          i, cases, events;
    json_t         *file, *c;
    const char     *name;
    wa_batch_t     *b;
    json_error_t    err;
    struct dirent  *de;

    dir = opendir(WA_FIXTURES);
    ck_assert_msg(dir != NULL, "no fixtures in %s", WA_FIXTURES);

    cases = 0;
    events = 0;

    while ((de = readdir(dir)) != NULL) {
        if (strstr(de->d_name, ".json") == NULL) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", WA_FIXTURES, de->d_name);
        file = json_load_file(path, 0, &err);
        ck_assert_msg(file != NULL, "%s: %s", path, err.text);

        json_object_foreach(file, name, c) {
            body = json_dumps(c, JSON_COMPACT | JSON_ENSURE_ASCII
                                 | JSON_PRESERVE_ORDER);
            b = normalize_str(body);
            free(body);

            ck_assert_msg(b->error == NULL, "%s/%s: %s", de->d_name, name,
                          b->error);
            ck_assert_msg(b->nevents == expected_events(c),
                          "%s/%s: %zu events, %zu expected", de->d_name,
                          name, b->nevents, expected_events(c));

            for (i = 0; i < b->nevents; i++) {
                ck_assert_ptr_nonnull(wa_event_field(&b->events[i], "raw"));
                ck_assert_ptr_nonnull(wa_event_field(&b->events[i],
                                                     "received_at"));
                ck_assert_int_gt(b->events[i].event_id_len, 0);
                ck_assert_int_le(b->events[i].nfields,
                                 WA_EVENT_MAX_FIELDS + 1);
                ck_names_unique(&b->events[i], name);
            }

            cases++;
            events += b->nevents;
        }

        json_decref(file);
    }

    closedir(dir);

    ck_assert_int_ge(cases, 110);
    ck_assert_int_ge(events, cases);
}
END_TEST


Suite *
normalize_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("normalize");
    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, message_fields);
    tcase_add_test(tc, typed_fields);
    tcase_add_test(tc, statuses_errors_and_ids);
    tcase_add_test(tc, other_fields_flattened);
    tcase_add_test(tc, unparsed_bodies);
    tcase_add_test(tc, bad_pieces_are_kept_beside_good_ones);
    tcase_add_test(tc, large_batch);
    tcase_add_test(tc, field_limit);
    tcase_add_test(tc, parser_edges);
    tcase_add_test(tc, every_fixture);
    tcase_add_test(tc, common_fields_not_injected);
    tcase_add_test(tc, nul_in_ids_and_texts);
    suite_add_tcase(s, tc);

    /* seconds under the sanitizers: Check's default of 4 is too short */
    tc = tcase_create("complexity");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, flatten_once);
    suite_add_tcase(s, tc);

    return s;
}
