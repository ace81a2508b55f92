/*
 * wa-relay: FCALL wa_ingest_3, formatted (wa_ingest.h).
 */

#include "wa_ingest.h"

/* the digits of a size_t, at most */
#define WA_INGEST_NUM  20


static size_t
wa_ingest_streams(const wa_ingest_call_t *c)
{
    size_t  i, n;

    for (i = 0, n = 0; i < WA_STREAM_COUNT; i++) {
        n += c->used[i] != 0;
    }

    return n;
}


static size_t
wa_ingest_keys(const wa_ingest_call_t *c)
{
    return (c->dedupe ? c->events : 0) + wa_ingest_streams(c)
           + (c->guard.len > 0);
}


size_t
wa_ingest_argc(const wa_ingest_call_t *c)
{
    return 3 + wa_ingest_keys(c) + 3 + c->requests + 2 * c->events
           + 2 * c->fields;
}


size_t
wa_ingest_digits(const wa_ingest_call_t *c)
{
    return (c->requests + 2 * c->events + WA_STREAM_COUNT + 2)
           * WA_INGEST_NUM;
}


typedef struct {
    const char  **argv;
    size_t       *lens;
    size_t        k;
    char         *num;
} wa_ingest_out_t;


static void
wa_ingest_arg(wa_ingest_out_t *o, const char *s, size_t len)
{
    o->argv[o->k] = s;
    o->lens[o->k] = len;
    o->k++;
}


/* v in decimal at p: its length (no NUL: arguments go with lengths) */
static size_t
wa_ingest_decimal(char *p, size_t v)
{
    char    tmp[WA_INGEST_NUM];
    size_t  n, i;

    n = 0;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    for (i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }

    return n;
}


static void
wa_ingest_num(wa_ingest_out_t *o, size_t v)
{
    size_t  len;

    len = wa_ingest_decimal(o->num, v);
    wa_ingest_arg(o, o->num, len);
    o->num += len;
}


/* the events of a request, each naming its stream by its index in KEYS */
static void
wa_ingest_events(wa_ingest_out_t *o, const wa_ingest_req_t *r,
    const wa_bytes_t *index)
{
    size_t             i, j;
    const wa_event_t  *ev;

    wa_ingest_num(o, r->nevents);

    for (i = 0; i < r->nevents; i++) {
        ev = &r->events[i];

        wa_ingest_arg(o, index[ev->stream].data, index[ev->stream].len);
        wa_ingest_num(o, ev->nfields);

        for (j = 0; j < ev->nfields; j++) {
            wa_ingest_arg(o, ev->fields[j].name, ev->fields[j].name_len);
            wa_ingest_arg(o, ev->fields[j].data, ev->fields[j].len);
        }
    }
}


size_t
wa_ingest_format(const wa_ingest_call_t *c, const char **argv, size_t *lens,
    char *digits)
{
    size_t                  i;
    wa_bytes_t              index[WA_STREAM_COUNT];
    wa_ingest_out_t         o;
    const wa_ingest_req_t  *r;

    o.argv = argv;
    o.lens = lens;
    o.k = 0;
    o.num = digits;

    wa_ingest_arg(&o, "FCALL", 5);
    wa_ingest_arg(&o, WA_INGEST_FUNCTION, sizeof(WA_INGEST_FUNCTION) - 1);
    wa_ingest_num(&o, wa_ingest_keys(c));

    for (r = c->first; c->dedupe && r; r = r->next) {
        for (i = 0; i < r->nevents; i++) {
            wa_ingest_arg(&o, r->keys[i].data, r->keys[i].len);
        }
    }

    /* each stream used; its index in KEYS is what the events name */
    for (i = 0; i < WA_STREAM_COUNT; i++) {
        if (!c->used[i]) {
            continue;
        }

        index[i].data = o.num;
        index[i].len = wa_ingest_decimal(o.num, o.k - 2);
        o.num += index[i].len;

        wa_ingest_arg(&o, c->streams[i].data, c->streams[i].len);
    }

    /* last of the keys: a call naming it is refused while the slot moves */
    if (c->guard.len) {
        wa_ingest_arg(&o, c->guard.data, c->guard.len);
    }

    wa_ingest_arg(&o, c->dedupe_seconds.data, c->dedupe_seconds.len);
    wa_ingest_arg(&o, c->cap.data, c->cap.len);
    wa_ingest_num(&o, c->requests);

    for (r = c->first; r; r = r->next) {
        wa_ingest_events(&o, r, index);
    }

    return o.k;
}
