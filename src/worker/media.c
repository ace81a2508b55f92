/*
 * wa-relayd: the media fetcher, a service (service.h).  It reads
 * <prefix>:messages in its own group (<group>:media), acknowledges at
 * once what is not a media message, and keeps up to --media-concurrency
 * files in hand, each
 * acknowledged only once stored or buried in <prefix>:dead: a worker
 * stopped or killed mid-download leaves the entry pending, and whoever
 * takes it over (XAUTOCLAIM, or itself when it starts again) fetches it.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "media.h"
#include "wa_streams.h"
#include "worker.h"

static char *
entry_dup(redisReply *fields, const char *name)
{
    redisReply  *v;

    v = wa_reply_field(fields, name);

    return strndup(v ? v->str : "", v ? v->len : 0);
}


static int
in_hand(wa_media_t *m, const char *id)
{
    wa_media_job_t  *j;

    for (j = m->jobs; j; j = j->next) {
        if (strcmp(j->id, id) == 0) {
            return 1;
        }
    }

    return 0;
}


/* a message of any origin: inbound, an echo of the app, the history */
static int
media_kind(const redisReply *kind)
{
    return strcmp(kind->str, WA_KIND_MESSAGE) == 0
           || strcmp(kind->str, WA_KIND_ECHO) == 0
           || strcmp(kind->str, WA_KIND_HISTORY) == 0;
}


/* a message with a media id becomes a job; 1 if it did */
static int
media_take_one(wa_media_t *m, redisReply *e)
{
    redisReply      *f, *kind, *media_id;
    wa_media_job_t  *j;

    f = e->element[1];
    kind = wa_reply_field(f, WA_FIELD_KIND);
    media_id = wa_reply_field(f, "media_id");

    if (kind == NULL || !media_kind(kind)
        || media_id == NULL || media_id->len == 0
        || e->element[0]->len >= sizeof(j->id))
    {
        return 0;
    }

    if (in_hand(m, e->element[0]->str)) {
        return 1;
    }

    j = calloc(1, sizeof(wa_media_job_t));
    if (j == NULL) {
        wa_log(WA_LOG_ERROR, "media: out of memory");
        exit(1);
    }

    memcpy(j->id, e->element[0]->str, e->element[0]->len + 1);
    j->event_id = entry_dup(f, WA_FIELD_EVENT_ID);
    j->msg_id = entry_dup(f, "msg_id");
    j->media_id = entry_dup(f, "media_id");
    j->phone_number_id = entry_dup(f, WA_FIELD_PHONE_NUMBER_ID);
    j->mime_type = entry_dup(f, "mime_type");
    j->sha256 = entry_dup(f, "sha256");
    j->size = -1;

    if (j->event_id == NULL || j->msg_id == NULL || j->media_id == NULL
        || j->phone_number_id == NULL || j->mime_type == NULL
        || j->sha256 == NULL)
    {
        wa_log(WA_LOG_ERROR, "media: out of memory");
        exit(1);
    }

    j->next = m->jobs;
    m->jobs = j;
    m->njobs++;

    return 1;
}


/* entries read or taken over: jobs, and the rest acknowledged at once */
static int
media_take(void *data, int s, redisReply **entries, size_t n)
{
    size_t       i;
    wa_args_t    a;
    wa_media_t  *m = data;
    redisReply  *r;

    (void) s;

    wa_args(&a, "XACK", m->messages, m->group, NULL);

    for (i = 0; i < n; i++) {
        if (!wa_reader_valid(entries[i]) || !media_take_one(m, entries[i])) {
            if (a.argc == WA_ARGS_MAX) {
                r = wa_link_call(&m->link, &a);
                if (r == NULL) {
                    return -1;
                }

                freeReplyObject(r);
                wa_args(&a, "XACK", m->messages, m->group, NULL);
            }

            wa_args_addn(&a, entries[i]->element[0]->str,
                         entries[i]->element[0]->len);
            m->n.skipped++;
        }
    }

    if (a.argc == 3) {
        return 0;
    }

    r = wa_link_call(&m->link, &a);
    if (r == NULL) {
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


/* from "0": this consumer's own pending entries; ">": new ones */
static int
media_read(wa_media_t *m, const char *from, long block)
{
    redisReply  *r, *e;
    long         room;

    room = m->o->media_concurrency * 4 - m->njobs;
    if (room <= 0) {
        return 0;
    }

    if (wa_reader_read(&m->reader, from, room, block, &r) != 0) {
        return -1;
    }

    if (r == NULL) {
        return 0;
    }

    e = wa_reader_entries(&m->reader, r, 0);

    if (e != NULL && media_take(m, 0, e->element, e->elements) != 0) {
        freeReplyObject(r);
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


/* jobs whose time has come, as far as the concurrency allows */
static int
media_dispatch(wa_media_t *m)
{
    int              rc;
    long long        now;
    wa_media_job_t  *j, *next;

    now = wa_clock_ms();

    for (j = m->jobs; j && m->http.inflight < m->o->media_concurrency; j = next)
    {
        next = j->next;

        if (j->running || j->ready_ms > now) {
            continue;
        }

        if (!j->checked) {
            rc = wa_media_known(m, j);
            if (rc != 0) {
                wa_media_forget(m, j);

                if (rc < 0) {
                    return -1;
                }

                continue;
            }

            j->checked = 1;
        }

        rc = wa_media_job_start(m, j);
        if (rc > 0) {
            wa_media_forget(m, j);

        } else if (rc < 0) {
            return -1;
        }
    }

    return 0;
}


static void
media_stats(void *data)
{
    char         key[512];
    long long    v[6];
    wa_media_t  *m = data;

    static const char  *names[] = {
        "fetched", "bytes", "already", "skipped", "retried", "dead"
    };

    v[0] = m->n.fetched;
    v[1] = m->n.bytes;
    v[2] = m->n.already;
    v[3] = m->n.skipped;
    v[4] = m->n.retried;
    v[5] = m->n.dead;

    wa_log(WA_LOG_INFO, "media: fetched %lld (%lld bytes), already %lld, "
           "retried %lld, dead %lld", v[0], v[1], v[2], v[4], v[5]);

    snprintf(key, sizeof(key), "%s:media:worker:%s", m->part->prefix,
             m->o->consumer);
    wa_link_counters(&m->link, key, names, v, 6);
}


/* one turn: Redis's side, then the transfers; -1 when the link is gone */
static int
media_turn(void *data, long long now)
{
    wa_media_t  *m = data;

    if (wa_clock_due(now, &m->next_claim, m->o->claim_idle_ms / 2 + 1)
        && wa_reader_claim(&m->reader, 0, m->o->media_concurrency, 4,
                           media_take, m) != 0)
    {
        return -1;
    }

    if (media_read(m, ">", m->njobs ? 0 : 100) != 0
        || media_dispatch(m) != 0)
    {
        return -1;
    }

    if (m->http.inflight) {
        return wa_http_run(&m->http, 20);
    }

    /* only backoffs hold the jobs in hand: a short nap */
    if (m->njobs) {
        wa_clock_sleep_ms(20);
    }

    return 0;
}


static int
media_connected(void *data)
{
    wa_media_t  *m = data;

    m->next_claim = 0;

    if (wa_reader_groups(&m->reader) != 0) {
        return -1;
    }

    return media_read(m, "0", 0);
}


/* what is in hand stays pending: whoever reads next fetches it */
static void
media_free(void *data)
{
    wa_media_t  *m = data;

    while (m->jobs) {
        wa_media_forget(m, m->jobs);
    }

    wa_http_free(&m->http);
    free(m);
}


static const wa_service_hooks_t  wa_media_hooks = {
    media_connected, media_turn, NULL, NULL, NULL, media_stats, media_free
};


/* the directories, readable by the worker's group: 0750, 0640 files */
static int
media_dirs(const wa_options_t *o)
{
    char  tmp[4096];

    snprintf(tmp, sizeof(tmp), "%s/tmp", o->media_dir);

    if ((mkdir(o->media_dir, 0750) != 0 && errno != EEXIST)
        || chmod(o->media_dir, 0750) != 0
        || (mkdir(tmp, 0700) != 0 && errno != EEXIST))
    {
        wa_log(WA_LOG_ERROR, "media: cannot make %s: %s", tmp,
               strerror(errno));
        return -1;
    }

    return 0;
}


int
wa_media_start(const wa_options_t *o, const wa_part_t *part)
{
    wa_media_t  *m;

    if (o->media_dir == NULL) {
        return 0;
    }

    if (media_dirs(o) != 0) {
        return -1;
    }

    if (part->index == 0) {
        wa_media_tmp_clean(o->media_dir);
    }

    m = calloc(1, sizeof(wa_media_t));
    if (m == NULL) {
        return -1;
    }

    m->o = o;
    m->part = part;
    wa_media_host(m->host, sizeof(m->host));
    snprintf(m->group, sizeof(m->group), "%s:media", o->group);
    snprintf(m->messages, sizeof(m->messages), "%s:%s", part->prefix,
             wa_stream_names[WA_STREAM_MESSAGES]);
    snprintf(m->media, sizeof(m->media), "%s:media", part->prefix);
    snprintf(m->dead, sizeof(m->dead), "%s:%s", part->prefix,
             WA_STREAM_DEAD);

    wa_link_init(&m->link, o, part->slot, "media: ");
    wa_reader_init(&m->reader, &m->link, part->prefix, m->dead);
    /* media of messages from now on: older ones may be gone from Meta */
    wa_reader_group(&m->reader, m->group, "$");
    wa_reader_add(&m->reader, m->messages);

    if (wa_http_init(&m->http, o, wa_media_ended, m) != 0) {
        free(m);
        return -1;
    }

    /* transfers in flight are cut short when stopped: entries stay pending */
    wa_service_init(&m->service, "media",
                    part->count > 1 ? part->prefix : NULL, &wa_media_hooks,
                    m, &m->link, o->stats_interval_ms);

    if (wa_service_start(&m->service) != 0) {
        media_free(m);
        return -1;
    }

    wa_log(WA_LOG_INFO, "%s: on, into %s, %ld at once, up to %ld bytes",
           m->service.name, o->media_dir, o->media_concurrency,
           o->media_max_bytes);

    return 0;
}
