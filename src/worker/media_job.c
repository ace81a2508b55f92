/*
 * wa-relayd: one media file's requests.  First the media id is resolved
 * (GET /<version>/<media id>: a URL valid for minutes, the MIME type,
 * Meta's SHA-256 and the size), then the URL is downloaded with the token
 * into a temp file under --media-dir, hashed as it comes.  A URL that has
 * expired (404, 403, 410) is resolved again at once; a 429, a 5xx, a Graph
 * API error Meta says to retry, or no answer, after a backoff; each counts
 * an attempt, --media-attempts in all.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "counters.h"
#include "log.h"
#include "media.h"
#include "wa_graph.h"


/* the download: to the temp file and the digest, up to the size cap */
static size_t
on_file(char *data, size_t size, size_t nmemb, void *arg)
{
    size_t           len;
    wa_media_job_t  *j = arg;

    len = size * nmemb;

    if (j->got + (long long) len > j->max) {
        j->too_big = 1;
        return 0;
    }

    if (fwrite(data, 1, len, j->fp) != len
        || EVP_DigestUpdate(j->md, data, len) != 1)
    {
        return 0;
    }

    j->got += len;

    return len;
}


static void
job_reset(wa_media_job_t *j)
{
    if (j->easy) {
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }

    if (j->fp) {
        fclose(j->fp);
        j->fp = NULL;
        unlink(j->tmp);
    }

    curl_slist_free_all(j->headers);
    j->headers = NULL;
    wa_answer_free(&j->body);
    j->got = 0;
    j->too_big = 0;
}


/* the temp file and the digest a download writes to */
static int
job_open(wa_media_t *m, wa_media_job_t *j)
{
    wa_media_tmp_name(m, j->tmp, sizeof(j->tmp));

    j->fp = fopen(j->tmp, "wb");
    if (j->fp == NULL) {
        wa_log(WA_LOG_ERROR, "media: cannot write %s", j->tmp);
        return -1;
    }

    if (j->md == NULL) {
        j->md = EVP_MD_CTX_new();
    }

    if (j->md == NULL || EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) != 1) {
        return -1;
    }

    return 0;
}


static int job_retry(wa_media_t *m, wa_media_job_t *j, const char *why,
    long code, int now);


int
wa_media_job_start(wa_media_t *m, wa_media_job_t *j)
{
    char   url[2048];
    char  *id;

    job_reset(j);

    if (j->step == WA_MEDIA_DOWNLOAD && job_open(m, j) != 0) {
        return job_retry(m, j, "cannot write under --media-dir", 0, 0);
    }

    j->easy = wa_http_request(&m->http, j->step == WA_MEDIA_DOWNLOAD
                                        ? j->url : NULL,
                              NULL, &j->headers, j);
    if (j->easy == NULL) {
        wa_log(WA_LOG_ERROR, "media: out of memory");
        return -1;
    }

    if (j->step == WA_MEDIA_RESOLVE) {
        id = curl_easy_escape(j->easy, j->media_id, 0);
        snprintf(url, sizeof(url), "%s/%s/%s?phone_number_id=%s",
                 m->o->graph_url, m->o->graph_version, id ? id : "",
                 j->phone_number_id);
        curl_free(id);
        curl_easy_setopt(j->easy, CURLOPT_URL, url);

        j->body.max = 65536;        /* a small JSON object */
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, wa_answer_write);
        curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, &j->body);
        curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS,
                         m->o->request_timeout_ms);

    } else {
        j->max = m->o->media_max_bytes;

        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_file);
        curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
        /* the token is not sent on to another host (libcurl's default) */
        curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(j->easy, CURLOPT_MAXREDIRS, 3L);
        curl_easy_setopt(j->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        /* a large file takes what it takes, but not stalled */
        curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_TIME,
                         (long) (m->o->request_timeout_ms / 1000 + 1));
    }

    if (wa_http_add(&m->http, j->easy) != 0) {
        return -1;
    }

    j->running = 1;

    return 0;
}


/* another attempt after a backoff, or the dead-letter stream */
static int
job_retry(wa_media_t *m, wa_media_job_t *j, const char *why, long code,
    int now)
{
    long long  d;

    j->attempts++;
    j->step = WA_MEDIA_RESOLVE;

    if (j->attempts >= m->o->media_attempts) {
        return wa_media_bury(m, j, why, code);
    }

    d = now ? 0 : wa_graph_backoff(WA_RETRY, m->o->retry_base_ms,
                                   j->attempts);

    wa_log(WA_LOG_WARN, "media: %s (%s) attempt %ld: %s", j->msg_id,
           j->media_id, j->attempts, why);

    j->ready_ms = wa_clock_ms() + d;
    m->n.retried++;
    wa_counters_add(WA_FAM_MEDIA, "retried", NULL, 1);

    return 0;
}


/* a string member of the resolve answer replaces what the job had */
static int
take_string(json_t *obj, const char *name, char **to)
{
    char    *p;
    json_t  *v;

    v = json_object_get(obj, name);
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return 0;
    }

    p = strdup(json_string_value(v));
    if (p == NULL) {
        return -1;
    }

    free(*to);
    *to = p;

    return 0;
}


static int
resolved(wa_media_t *m, wa_media_job_t *j, long status, CURLcode cc)
{
    json_t             *doc, *size;
    wa_graph_result_t   res;

    if (cc != CURLE_OK || status != 200) {
        /* what Meta's error says of a retry, as for a message sent */
        wa_graph_result(&res, cc == CURLE_OK ? status : 0, j->body.data,
                        j->body.len, curl_easy_strerror(cc));

        if (res.verdict == WA_GIVE_UP) {
            return wa_media_bury(m, j, res.reason, res.code);
        }

        return job_retry(m, j, res.reason, res.code, 0);
    }

    doc = json_loadb(j->body.data, j->body.len, 0, NULL);
    size = json_object_get(doc, "file_size");

    if (take_string(doc, "url", &j->url) != 0
        || take_string(doc, "mime_type", &j->mime_type) != 0
        || take_string(doc, "sha256", &j->sha256) != 0)
    {
        json_decref(doc);
        return -1;
    }

    j->size = json_is_integer(size) ? json_integer_value(size) : -1;
    json_decref(doc);

    if (j->url == NULL || strncmp(j->url, "http", 4) != 0) {
        return job_retry(m, j, "the Graph API gave no media URL", 0, 0);
    }

    if (j->size > m->o->media_max_bytes) {
        return wa_media_bury(m, j, "larger than --media-max-bytes", 0);
    }

    j->step = WA_MEDIA_DOWNLOAD;
    j->ready_ms = 0;

    return 0;
}


static int
downloaded(wa_media_t *m, wa_media_job_t *j, long status, CURLcode cc)
{
    char            hex[2 * EVP_MAX_MD_SIZE + 1], why[256];
    unsigned int    len, i;
    unsigned char   md[EVP_MAX_MD_SIZE];

    if (j->too_big) {
        return wa_media_bury(m, j, "larger than --media-max-bytes", 0);
    }

    if (cc != CURLE_OK) {
        return job_retry(m, j, curl_easy_strerror(cc), 0, 0);
    }

    if (status == 404 || status == 403 || status == 410) {
        /* the URL expired: a fresh one, now */
        snprintf(why, sizeof(why), "media URL answered HTTP %ld", status);
        return job_retry(m, j, why, 0, 1);
    }

    if (status != 200) {
        snprintf(why, sizeof(why), "media download answered HTTP %ld",
                 status);
        return job_retry(m, j, why, 0, 0);
    }

    if (fflush(j->fp) != 0 || fsync(fileno(j->fp)) != 0
        || EVP_DigestFinal_ex(j->md, md, &len) != 1)
    {
        wa_log(WA_LOG_ERROR, "media: cannot write %s", j->tmp);
        return job_retry(m, j, "cannot write the file", 0, 0);
    }

    for (i = 0; i < len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }

    if (j->sha256[0] && !wa_media_same_digest(j->sha256, md, len)) {
        snprintf(why, sizeof(why), "sha256 mismatch: Meta said %.80s, the "
                 "file is %s", j->sha256, hex);
        return wa_media_bury(m, j, why, 0);
    }

    return wa_media_stored(m, j, hex);
}


/* a transfer that ended (a wa_http_done_pt); a job done is out of the list */
int
wa_media_ended(void *data, void *req, long status, CURLcode cc, int ok)
{
    int              done;
    wa_media_t      *m = data;
    wa_media_job_t  *j = req;

    j->running = 0;

    if (!ok) {
        /* the link is gone: the entry stays pending, read again */
        wa_media_forget(m, j);
        return 0;
    }

    done = j->step == WA_MEDIA_RESOLVE ? resolved(m, j, status, cc)
                                       : downloaded(m, j, status, cc);

    if (done != 0) {
        wa_media_forget(m, j);
    }

    return done < 0 ? -1 : 0;
}


/* a job's memory, its transfer and its temporary file */
void
wa_media_job_free(wa_media_job_t *j)
{
    if (j->easy) {
        curl_easy_cleanup(j->easy);
    }

    if (j->fp) {
        fclose(j->fp);
        unlink(j->tmp);
    }

    EVP_MD_CTX_free(j->md);
    curl_slist_free_all(j->headers);
    free(j->event_id);
    free(j->msg_id);
    free(j->media_id);
    free(j->phone_number_id);
    free(j->mime_type);
    free(j->sha256);
    wa_answer_free(&j->body);
    free(j->url);
    free(j);
}


/* a job done with: out of the list */
void
wa_media_forget(wa_media_t *m, wa_media_job_t *done)
{
    wa_media_job_t  **p;

    for (p = &m->jobs; *p; p = &(*p)->next) {
        if (*p == done) {
            *p = done->next;
            m->njobs--;
            wa_media_job_free(done);
            return;
        }
    }
}
