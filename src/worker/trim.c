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

#include "counters.h"
#include "log.h"
#include "reader.h"


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


/* the oldest entry some group still needs, as "ms-seq"; 0 if none */
static int
wa_trim_minid(wa_reader_t *rd, int s, char *minid, size_t size)
{
    int                  have;
    size_t               i;
    wa_args_t            a;
    long long            pending;
    const char          *name, *last;
    redisReply          *groups, *g, *p;
    unsigned long long   ms, seq, min_ms, min_seq;

    wa_args(&a, "XINFO", "GROUPS", rd->stream[s], NULL);
    groups = wa_link_call(rd->link, &a);
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
            wa_args(&a, "XPENDING", rd->stream[s], name, NULL);
            p = wa_link_call(rd->link, &a);
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
        snprintf(minid, size, "%llu-%llu", min_ms, min_seq);
    }

    return have;
}


/* the last resort for a group that stopped reading: counted and logged */
static int
wa_trim_cap(wa_reader_t *rd, int s, const char *label)
{
    wa_args_t    a;
    long long    capped;
    redisReply  *r;
    char         key[256];

    wa_args(&a, "XTRIM", rd->stream[s], "MAXLEN", "~", NULL);
    wa_args_ll(&a, rd->o->max_len);

    r = wa_link_call(rd->link, &a);
    if (r == NULL) {
        return -1;
    }

    capped = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);

    if (capped <= 0) {
        return 0;
    }

    wa_log(WA_LOG_ERROR, "%s over --max-len %ld: trimmed %lld entries "
           "some group had not acknowledged", rd->stream[s], rd->o->max_len,
           capped);
    rd->n.capped += capped;
    wa_counters_add(WA_FAM_ENTRIES, rd->stream[s], "capped", capped);

    snprintf(key, sizeof(key), "%s:worker:capped", rd->prefix);
    wa_args(&a, "HINCRBY", key, label, NULL);
    wa_args_ll(&a, capped);

    r = wa_link_call(rd->link, &a);
    if (r == NULL) {
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


int
wa_trim_stream(wa_reader_t *rd, int s, const char *label)
{
    int          rc;
    char         minid[64];
    wa_args_t    a;
    redisReply  *r;

    rc = wa_trim_minid(rd, s, minid, sizeof(minid));
    if (rc < 0) {
        return -1;
    }

    if (rc == 1) {
        wa_args(&a, "XTRIM", rd->stream[s], "MINID", "~", minid, NULL);
        r = wa_link_call(rd->link, &a);
        if (r == NULL) {
            return -1;
        }

        if (r->type == REDIS_REPLY_INTEGER) {
            rd->n.trimmed += r->integer;
            wa_counters_add(WA_FAM_ENTRIES, rd->stream[s], "trimmed",
                           r->integer);
        }

        freeReplyObject(r);
    }

    return rd->o->max_len ? wa_trim_cap(rd, s, label) : 0;
}
