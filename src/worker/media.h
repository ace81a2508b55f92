/*
 * wa-relayd: the media fetcher (--media-dir), a service of its own.  It
 * reads <prefix>:messages in a group of its own, and for every image,
 * video, audio, document or sticker of a message (inbound, an echo of the
 * business app, the history) resolves the media id through
 * the Graph API, downloads the file with the token, checks Meta's SHA-256,
 * stores it under its own digest and appends an entry to <prefix>:media
 * (docs/media.md).  media.c: the service and the stream; media_job.c: one
 * file's requests; media_store.c: the file on disk and in Redis;
 * media_tmp.c: the temporary files.  With partitions, a fetcher per
 * partition reads its messages and keeps its media keys there.
 */

#ifndef WA_MEDIA_H
#define WA_MEDIA_H

#include <stdio.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "answer.h"
#include "http.h"
#include "link.h"
#include "part.h"
#include "reader.h"
#include "service.h"

#define WA_MEDIA_TTL   (30 * 86400)   /* Meta keeps media 30 days */
#define WA_MEDIA_MAXLEN  100000       /* <prefix>:media, about */

typedef enum {
    WA_MEDIA_RESOLVE = 0,           /* GET /<version>/<media id> */
    WA_MEDIA_DOWNLOAD               /* GET the URL it gave */
} wa_media_step_t;

typedef struct wa_media_job_s  wa_media_job_t;

struct wa_media_job_s {
    wa_media_job_t      *next;
    char                 id[64];        /* entry id in <prefix>:messages */
    char                *event_id;
    char                *msg_id;
    char                *media_id;
    char                *phone_number_id;
    char                *mime_type;     /* the webhook's, then Meta's */
    char                *sha256;        /* the webhook's, then Meta's */
    wa_media_step_t      step;
    long                 attempts;
    long long            ready_ms;      /* not before (a retry's backoff) */
    int                  running;       /* a transfer in flight */
    int                  checked;       /* not fetched before: known */

    CURL                *easy;
    struct curl_slist   *headers;
    wa_answer_t          body;          /* the resolve answer */
    char                *url;           /* where the file is, for minutes */
    long long            size;          /* Meta's file_size, -1 unknown */

    FILE                *fp;            /* the download, under a temp name */
    char                 tmp[4096];
    EVP_MD_CTX          *md;
    long long            got;
    long long            max;           /* --media-max-bytes */
    int                  too_big;
};

typedef struct {
    long long            fetched;
    long long            bytes;
    long long            already;       /* fetched before: not again */
    long long            skipped;       /* not media */
    long long            retried;
    long long            dead;
} wa_media_counters_t;

typedef struct {
    const wa_options_t  *o;
    const wa_part_t     *part;
    wa_service_t         service;
    wa_link_t            link;
    wa_reader_t          reader;
    wa_media_counters_t  n;
    wa_http_t            http;          /* the transfers in flight */
    wa_media_job_t      *jobs;          /* in hand: waiting or in flight */
    long                 njobs;
    long long            next_claim;
    unsigned long        tmp_seq;
    char                 host[256];     /* temp names start with it */
    char                 group[256];
    char                 messages[256];
    char                 media[256];
    char                 dead[256];
} wa_media_t;


/*
 * media_job.c: a job's transfers.  0: going on (or retried later); 1: done
 * with (stored or buried): out of the list; -1: the link is gone.
 */
int wa_media_job_start(wa_media_t *m, wa_media_job_t *j);
int wa_media_ended(void *data, void *req, long status, CURLcode cc,
    int ok);
void wa_media_job_free(wa_media_job_t *j);

/* media_job.c: a job done with (or given up for now): out of the list */
void wa_media_forget(wa_media_t *m, wa_media_job_t *j);

/*
 * media_tmp.c: a download's temporary name; those of this host's workers
 * that are gone, removed (at start)
 */
void wa_media_host(char *buf, size_t size);
void wa_media_tmp_name(wa_media_t *m, char *buf, size_t size);
void wa_media_tmp_clean(const char *media_dir);

/* media_store.c: what becomes of a job in Redis and on disk */
int wa_media_known(wa_media_t *m, wa_media_job_t *j);
int wa_media_stored(wa_media_t *m, wa_media_job_t *j, const char *hex);
int wa_media_bury(wa_media_t *m, wa_media_job_t *j, const char *why,
    long code);
int wa_media_same_digest(const char *want, const unsigned char *md,
    unsigned int len);

#endif /* WA_MEDIA_H */
