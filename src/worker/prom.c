/*
 * wa-relayd: Prometheus's text format, written (prom.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "prom.h"


void
wa_printf(wa_text_t *t, const char *fmt, ...)
{
    int      n;
    char    *p;
    va_list  ap;

    for ( ;; ) {
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);

        if (n < 0) {
            return;
        }

        if ((size_t) n < t->cap - t->len) {
            t->len += n;
            return;
        }

        p = realloc(t->p, t->cap * 2 + n);
        if (p == NULL) {
            return;
        }

        t->p = p;
        t->cap = t->cap * 2 + n;
    }
}


/* a label value as Prometheus reads it: \, " and newlines escaped */
const char *
wa_escape(const char *v, char *buf, size_t size)
{
    size_t  k;

    for (k = 0; *v && k + 2 < size; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            buf[k++] = '\\';
            buf[k++] = *v == '\n' ? 'n' : *v;

        } else {
            buf[k++] = *v;
        }
    }

    buf[k] = '\0';

    return buf;
}
