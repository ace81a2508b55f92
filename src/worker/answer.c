/*
 * wa-relayd: an HTTP answer's body, kept up to a cap.
 */

#include <stdlib.h>
#include <string.h>

#include "answer.h"


size_t
wa_answer_write(char *data, size_t size, size_t nmemb, void *arg)
{
    char         *p;
    size_t        len;
    wa_answer_t  *a = arg;

    len = size * nmemb;

    if (a->len + len > a->max) {
        return 0;                   /* no answer we wait for is that big */
    }

    p = realloc(a->data, a->len + len + 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p + a->len, data, len);
    a->data = p;
    a->len += len;
    p[a->len] = '\0';

    return len;
}


void
wa_answer_free(wa_answer_t *a)
{
    free(a->data);
    a->data = NULL;
    a->len = 0;
}
