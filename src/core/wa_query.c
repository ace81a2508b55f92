/*
 * wa-relay: one argument of a query string, percent-decoded.
 */

#include <string.h>

#include "wa_query.h"


static int
wa_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


static ssize_t
wa_decode(const char *p, const char *end, char *out, size_t size)
{
    int      hi, lo;
    size_t   n;

    for (n = 0; p < end; n++) {
        if (n == size) {
            return -2;
        }

        if (*p == '+') {
            out[n] = ' ';
            p++;
            continue;
        }

        if (*p == '%' && end - p >= 3) {
            hi = wa_hexval(p[1]);
            lo = wa_hexval(p[2]);

            if (hi >= 0 && lo >= 0) {
                out[n] = (char) (hi << 4 | lo);
                p += 3;
                continue;
            }
        }

        out[n] = *p++;
    }

    return (ssize_t) n;
}


ssize_t
wa_query_arg(const char *q, size_t len, const char *name, char *out,
    size_t size)
{
    size_t       nlen;
    const char  *p, *end, *arg, *eq;

    nlen = strlen(name);
    end = q + len;

    for (p = q; p < end; p = arg + 1) {
        arg = memchr(p, '&', (size_t) (end - p));
        if (arg == NULL) {
            arg = end;
        }

        eq = memchr(p, '=', (size_t) (arg - p));
        if (eq == NULL) {
            eq = arg;
        }

        if ((size_t) (eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            return wa_decode(eq < arg ? eq + 1 : arg, arg, out, size);
        }
    }

    return -1;
}
