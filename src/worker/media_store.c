/*
 * wa-relayd: what becomes of a media file.  Stored under --media-dir by
 * its own SHA-256 (<dir>/<2 hex>/<64 hex>: the same file sent twice is
 * kept once), remembered in <prefix>:media:<media id> for as long as Meta
 * keeps media (so a redelivered message is not fetched twice), announced
 * in <prefix>:media and its entry acknowledged, in one MULTI; or buried in
 * <prefix>:dead with the reason.
 */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "log.h"
#include "media.h"
#include "wa_streams.h"


/* Meta's digest, hex (the Graph API) or base64 (webhooks), against md */
int
wa_media_same_digest(const char *want, const unsigned char *md,
    unsigned int len)
{
    int             n;
    size_t          wl, i;
    unsigned char   raw[64];
    char            hex[3];

    wl = strlen(want);

    if (wl == 2 * len) {
        for (i = 0; i < len; i++) {
            snprintf(hex, sizeof(hex), "%02x", md[i]);
            if (tolower((unsigned char) want[2 * i]) != hex[0]
                || tolower((unsigned char) want[2 * i + 1]) != hex[1])
            {
                return 0;
            }
        }

        return 1;
    }

    if (wl == 0 || wl % 4 != 0 || wl > 4 * sizeof(raw) / 3) {
        return 0;
    }

    n = EVP_DecodeBlock(raw, (const unsigned char *) want, (int) wl);

    /* the padding decodes as zero bytes at the end */
    while (n > 0 && wl > 0 && want[wl - 1] == '=') {
        n--;
        wl--;
    }

    return n == (int) len && memcmp(raw, md, len) == 0;
}


/* MULTI, the commands, EXEC: 0 when EXEC ran them, -1 otherwise */
static int
media_exec(wa_media_t *m, wa_args_t *cmds, int n)
{
    int          i, rc;
    wa_args_t    a;
    redisReply  *r;

    wa_args(&a, "MULTI", NULL);
    rc = wa_link_append(&m->link, &a);

    for (i = 0; i < n; i++) {
        rc |= wa_link_append(&m->link, &cmds[i]);
    }

    wa_args(&a, "EXEC", NULL);
    rc |= wa_link_append(&m->link, &a);

    if (rc != 0) {
        return -1;
    }

    for (i = 0; i < n + 2; i++) {
        r = wa_link_reply(&m->link);
        if (r == NULL) {
            return -1;
        }

        if (i == n + 1 && r->type != REDIS_REPLY_ARRAY) {
            /* logged; the entry stays pending and is read again */
            wa_link_failed(&m->link, r, "media: EXEC");
            rc = -1;

        } else {
            freeReplyObject(r);
        }
    }

    return rc;
}


static void
media_key(wa_media_t *m, wa_media_job_t *j, char *key, size_t size)
{
    snprintf(key, size, "%s:media:%s", m->part->prefix, j->media_id);
}


/* fetched before (a redelivery): acknowledged, 1; not yet: 0 */
int
wa_media_known(wa_media_t *m, wa_media_job_t *j)
{
    char         key[1024];
    wa_args_t    a[1];
    redisReply  *r;
    long long    known;

    media_key(m, j, key, sizeof(key));
    wa_args(a, "EXISTS", key, NULL);

    r = wa_link_call(&m->link, a);
    if (r == NULL) {
        return -1;
    }

    known = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);

    if (!known) {
        return 0;
    }

    wa_args(a, "XACK", m->messages, m->group, j->id, NULL);

    if (media_exec(m, a, 1) != 0) {
        return -1;
    }

    wa_log(WA_LOG_INFO, "media: %s (%s) fetched before, not again",
           j->msg_id, j->media_id);
    m->n.already++;
    wa_counters_add(WA_FAM_MEDIA, "already", NULL, 1);

    return 1;
}


/* the temp file under its digest's name; 0, or -1 and errno */
static int
media_place(wa_media_t *m, wa_media_job_t *j, const char *hex, char *path,
    size_t size)
{
    int  rc;

    snprintf(path, size, "%s/%.2s", m->o->media_dir, hex);

    if (mkdir(path, 0750) == 0) {
        chmod(path, 0750);          /* whatever the umask: the group reads */

    } else if (errno != EEXIST) {
        return -1;
    }

    snprintf(path, size, "%s/%.2s/%s", m->o->media_dir, hex, hex);

    rc = fclose(j->fp);
    j->fp = NULL;

    if (rc != 0 || rename(j->tmp, path) != 0) {
        unlink(j->tmp);
        return -1;
    }

    chmod(path, 0640);

    return 0;
}


int
wa_media_stored(wa_media_t *m, wa_media_job_t *j, const char *hex)
{
    char        key[1024], path[4096];
    wa_args_t   a[4];

    if (media_place(m, j, hex, path, sizeof(path)) != 0) {
        wa_log(WA_LOG_ERROR, "media: cannot store %s: %s", path,
               strerror(errno));
        return wa_media_bury(m, j, "cannot store the file", 0);
    }

    media_key(m, j, key, sizeof(key));

    wa_args(&a[0], "HSET", key, "path", path, "sha256", hex, "mime_type",
            j->mime_type, "msg_id", j->msg_id, "size", NULL);
    wa_args_ll(&a[0], j->got);
    wa_args_add(&a[0], "fetched_at");
    wa_args_ll(&a[0], (long long) time(NULL));
    wa_args(&a[1], "EXPIRE", key, NULL);
    wa_args_ll(&a[1], WA_MEDIA_TTL);
    wa_args(&a[2], "XADD", m->media, "MAXLEN", "~", NULL);
    wa_args_ll(&a[2], WA_MEDIA_MAXLEN);
    wa_args_add(&a[2], "*");
    wa_args_add(&a[2], WA_FIELD_V);
    wa_args_add(&a[2], WA_EVENTS_V);
    wa_args_add(&a[2], "event_id");
    wa_args_add(&a[2], j->event_id);
    wa_args_add(&a[2], "msg_id");
    wa_args_add(&a[2], j->msg_id);
    wa_args_add(&a[2], "media_id");
    wa_args_add(&a[2], j->media_id);
    wa_args_add(&a[2], "phone_number_id");
    wa_args_add(&a[2], j->phone_number_id);
    wa_args_add(&a[2], "path");
    wa_args_add(&a[2], path);
    wa_args_add(&a[2], "mime_type");
    wa_args_add(&a[2], j->mime_type);
    wa_args_add(&a[2], "size");
    wa_args_ll(&a[2], j->got);
    wa_args_add(&a[2], "sha256");
    wa_args_add(&a[2], hex);
    wa_args(&a[3], "XACK", m->messages, m->group, j->id, NULL);

    if (media_exec(m, a, 4) != 0) {
        return -1;
    }

    wa_log(WA_LOG_INFO, "media: %s (%s) stored: %s, %lld bytes", j->msg_id,
           j->media_id, path, j->got);
    m->n.fetched++;
    m->n.bytes += j->got;
    wa_counters_add(WA_FAM_MEDIA, "fetched", NULL, 1);

    return 1;
}


int
wa_media_bury(wa_media_t *m, wa_media_job_t *j, const char *why, long code)
{
    wa_args_t  a[2];

    wa_args(&a[0], "XADD", m->dead, "*", WA_FIELD_V, WA_EVENTS_V, "stream",
            m->messages, "id", j->id, "reason", why, "code", NULL);
    wa_args_ll(&a[0], code);
    wa_args_add(&a[0], "media_id");
    wa_args_add(&a[0], j->media_id);
    wa_args_add(&a[0], "msg_id");
    wa_args_add(&a[0], j->msg_id);
    wa_args_add(&a[0], "event_id");
    wa_args_add(&a[0], j->event_id);
    wa_args(&a[1], "XACK", m->messages, m->group, j->id, NULL);

    if (media_exec(m, a, 2) != 0) {
        return -1;
    }

    wa_log(WA_LOG_ERROR, "media: %s (%s) given up at attempt %ld, in %s: "
           "%s", j->msg_id, j->media_id, j->attempts + 1, m->dead, why);
    m->n.dead++;
    wa_counters_add(WA_FAM_MEDIA, "dead", NULL, 1);

    return 1;
}
