/*
 * wa-relay: one argument of a query string, percent-decoded.
 */

#ifndef WA_QUERY_H
#define WA_QUERY_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Finds the first argument called name in the query q (without the '?'),
 * decodes it ("%XX" and '+' for a space) into out and returns its length;
 * -1 when there is no such argument, -2 when it does not fit in size bytes.
 * A malformed escape is kept as it stands.
 */
ssize_t wa_query_arg(const char *q, size_t len, const char *name,
    char *out, size_t size);

#endif /* WA_QUERY_H */
