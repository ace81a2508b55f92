/*
 * wa-relayd: logging to a file (reopened on SIGHUP, for logrotate) or to
 * stderr.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

static const char  *log_names[] = { "debug", "info", "warn", "error" };
static const char  *log_path;
static FILE        *log_fp;
static int          log_level = WA_LOG_INFO;


int
wa_log_open(const char *path, const char *level)
{
    int  i;

    if (level) {
        for (i = WA_LOG_DEBUG; i <= WA_LOG_ERROR; i++) {
            if (strcmp(level, log_names[i]) == 0) {
                break;
            }
        }

        if (i > WA_LOG_ERROR) {
            return -1;
        }

        log_level = i;
    }

    log_path = path;

    return wa_log_reopen();
}


int
wa_log_reopen(void)
{
    FILE  *fp;

    if (log_path == NULL) {
        log_fp = stderr;
        return 0;
    }

    fp = fopen(log_path, "a");
    if (fp == NULL) {
        return -1;
    }

    setvbuf(fp, NULL, _IOLBF, 0);

    if (log_fp && log_fp != stderr) {
        fclose(log_fp);
    }

    log_fp = fp;

    return 0;
}


void
wa_log(int level, const char *fmt, ...)
{
    char            when[32];
    va_list         ap;
    struct tm       tm;
    struct timeval  tv;

    if (level < log_level) {
        return;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    fprintf(log_fp ? log_fp : stderr, "%s.%03dZ [%s] ", when,
            (int) (tv.tv_usec / 1000), log_names[level]);

    va_start(ap, fmt);
    vfprintf(log_fp ? log_fp : stderr, fmt, ap);
    va_end(ap);

    fputc('\n', log_fp ? log_fp : stderr);
}
