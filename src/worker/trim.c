/*
 * wa-relayd: trimming by progress.
 *
 * XACK frees nothing: a stream keeps every entry until it is trimmed.  Each
 * stream is trimmed to the oldest entry some group still needs (its oldest
 * pending entry, or the one after the last it read), so nothing a group has
 * not acknowledged is ever dropped.  --max-len is the last resort for a
 * group that stopped reading: entries trimmed by it are counted and logged.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "worker.h"


/* "ms-seq" as a pair, for comparing ids */
static int
parse_id(const char *s, unsigned long long *ms, unsigned long long *seq)
{
    char  *end;

    *ms = strtoull(s, &end, 10);
    *seq = 0;

    if (*end == '-') {
        *seq = strtoull(end + 1, NULL, 10);
    }

    return 0;
}


static int
id_less(unsigned long long ams, unsigned long long aseq,
    unsigned long long bms, unsigned long long bseq)
{
    return ams < bms || (ams == bms && aseq < bseq);
}


static const char *
field(redisReply *map, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < map->elements; i += 2) {
        if (strcmp(map->element[i]->str, name) == 0) {
            return map->element[i + 1]->type == REDIS_REPLY_STRING
                   ? map->element[i + 1]->str : NULL;
        }
    }

    return NULL;
}


static long long
ifield(redisReply *map, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < map->elements; i += 2) {
        if (strcmp(map->element[i]->str, name) == 0) {
            return map->element[i + 1]->integer;
        }
    }

    return 0;
}


int
trim_one(worker_t *w, const char *key, const char *label)
{
    int                  have;
    char                 minid[64];
    size_t               i;
    long long            pending, capped;
    const char          *name, *last;
    redisReply          *groups, *g, *p, *r;
    unsigned long long   ms, seq, min_ms, min_seq;

    groups = redisCommand(w->c, "XINFO GROUPS %s", key);
    if (groups == NULL) {
        return -1;
    }

    have = 0;
    min_ms = min_seq = 0;

    for (i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements;
         i++)
    {
        g = groups->element[i];
        name = field(g, "name");
        last = field(g, "last-delivered-id");
        pending = ifield(g, "pending");

        if (name == NULL || last == NULL) {
            continue;
        }

        if (pending) {
            p = redisCommand(w->c, "XPENDING %s %s", key, name);
            if (p == NULL) {
                freeReplyObject(groups);
                return -1;
            }

            if (p->type != REDIS_REPLY_ARRAY || p->elements < 2
                || p->element[1]->type != REDIS_REPLY_STRING)
            {
                freeReplyObject(p);
                continue;
            }

            parse_id(p->element[1]->str, &ms, &seq);
            freeReplyObject(p);

        } else {
            /* everything up to last-delivered-id is acknowledged */
            parse_id(last, &ms, &seq);
            seq++;
        }

        if (!have || id_less(ms, seq, min_ms, min_seq)) {
            min_ms = ms;
            min_seq = seq;
            have = 1;
        }
    }

    freeReplyObject(groups);

    if (have) {
        snprintf(minid, sizeof(minid), "%llu-%llu", min_ms, min_seq);
        r = redisCommand(w->c, "XTRIM %s MINID ~ %s", key, minid);
        if (r == NULL) {
            return -1;
        }

        if (r->type == REDIS_REPLY_INTEGER) {
            w->n.trimmed += r->integer;
        }

        freeReplyObject(r);
    }

    if (w->o->max_len == 0) {
        return 0;
    }

    r = redisCommand(w->c, "XTRIM %s MAXLEN ~ %ld", key,
                     w->o->max_len);
    if (r == NULL) {
        return -1;
    }

    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        capped = r->integer;
        log_msg(LOG_ERROR, "%s over --max-len %ld: trimmed %lld entries "
                "some group had not acknowledged", key,
                w->o->max_len, capped);
        w->n.capped += capped;

        freeReplyObject(r);
        r = redisCommand(w->c, "HINCRBY %s:worker:capped %s %lld",
                         w->o->prefix, label, capped);
        if (r == NULL) {
            return -1;
        }
    }

    freeReplyObject(r);

    return 0;
}


int
trim_streams(worker_t *w)
{
    int  s;

    for (s = 0; s < NSTREAMS; s++) {
        if (trim_one(w, w->stream[s], stream_names[s]) != 0) {
            log_msg(LOG_ERROR, "trimming %s: %s", w->stream[s],
                    w->c->errstr);
            return -1;
        }
    }

    return 0;
}
