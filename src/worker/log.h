/*
 * wa-relayd: one line per event of interest, with a time and a level.
 */

#ifndef WA_LOG_H
#define WA_LOG_H

enum { WA_LOG_DEBUG, WA_LOG_INFO, WA_LOG_WARN, WA_LOG_ERROR };

int wa_log_open(const char *path, const char *level);
int wa_log_reopen(void);
void wa_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* WA_LOG_H */
