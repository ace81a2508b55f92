/*
 * wa-relayd: one line per event of interest, with a time and a level.
 */

#ifndef WA_LOG_H
#define WA_LOG_H

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

int log_open(const char *path, const char *level);
int log_reopen(void);
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* WA_LOG_H */
