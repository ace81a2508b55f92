/*
 * wa-relayd: Prometheus's text format (0.0.4), written: a text that grows
 * as lines are added, and label values escaped.
 */

#ifndef WA_PROM_H
#define WA_PROM_H

#include <stddef.h>

/* a growing text: the page being written */
typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} wa_text_t;

/* printf at the text's end, growing it (a failed growth drops the line) */
void wa_printf(wa_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* a label value as Prometheus reads it: \, " and newlines escaped */
const char *wa_escape(const char *v, char *buf, size_t size);

#endif /* WA_PROM_H */
