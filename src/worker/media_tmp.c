/*
 * wa-relayd: the media fetcher's temporary files, under <media-dir>/tmp.
 *
 * A download is written to "<host>.<pid>.<partition>.<n>" and renamed
 * into place once its digest is checked.  A worker killed mid-download
 * leaves its file behind: at start, the files of this host whose process
 * is gone are removed.  Files of other hosts (a media directory shared by
 * several machines) are left to their own workers.
 */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "media.h"


/* this host's name, as temp names start with it (no dot: it separates) */
void
wa_media_host(char *buf, size_t size)
{
    char  *dot;

    if (gethostname(buf, size) != 0) {
        snprintf(buf, size, "localhost");
    }

    buf[size - 1] = '\0';

    dot = strchr(buf, '.');
    if (dot) {
        *dot = '\0';
    }
}


void
wa_media_tmp_name(wa_media_t *m, char *buf, size_t size)
{
    snprintf(buf, size, "%s/tmp/%s.%ld.%u.%lu", m->o->media_dir, m->host,
             (long) getpid(), m->part->index, ++m->tmp_seq);
}


/* a file of this host whose process is gone */
static int
media_orphan(const char *name, const char *host)
{
    long    pid;
    char   *end;
    size_t  len;

    len = strlen(host);

    if (strncmp(name, host, len) != 0 || name[len] != '.') {
        return 0;
    }

    pid = strtol(name + len + 1, &end, 10);

    if (end == name + len + 1 || *end != '.' || pid <= 0
        || pid == (long) getpid())
    {
        return 0;
    }

    return kill((pid_t) pid, 0) != 0 && errno == ESRCH;
}


void
wa_media_tmp_clean(const char *media_dir)
{
    DIR            *d;
    char            tmp[4096], path[8192], host[256];
    long            n;
    struct dirent  *e;

    snprintf(tmp, sizeof(tmp), "%s/tmp", media_dir);
    wa_media_host(host, sizeof(host));

    d = opendir(tmp);
    if (d == NULL) {
        return;
    }

    n = 0;

    while ((e = readdir(d)) != NULL) {
        if (!media_orphan(e->d_name, host)) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);

        if (unlink(path) == 0) {
            n++;
        }
    }

    closedir(d);

    if (n) {
        wa_log(WA_LOG_INFO, "media: %ld temporary file%s of a stopped "
               "worker removed from %s", n, n > 1 ? "s" : "", tmp);
    }
}
