/*
 * wa-relayd: the body of an HTTP answer as libcurl hands it over, kept in
 * memory up to a cap (the Graph API's JSON: the sender's and the media
 * fetcher's requests).
 */

#ifndef WA_ANSWER_H
#define WA_ANSWER_H

#include <stddef.h>

typedef struct {
    char    *data;          /* NUL-terminated, NULL before the first byte */
    size_t   len;
    size_t   max;           /* longer: the transfer fails */
} wa_answer_t;

/* a CURLOPT_WRITEFUNCTION; CURLOPT_WRITEDATA is the wa_answer_t */
size_t wa_answer_write(char *data, size_t size, size_t nmemb, void *arg);

void wa_answer_free(wa_answer_t *a);

#endif /* WA_ANSWER_H */
