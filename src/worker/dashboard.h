/*
 * wa-relayd: the live dashboard on the --metrics listener: the page (/,
 * src/worker/dashboard.html, built in) and what it shows (/api/dashboard),
 * read from Redis on the metrics thread's own link.
 */

#ifndef WA_DASHBOARD_H
#define WA_DASHBOARD_H

#include <stddef.h>

#include <jansson.h>

#include "link.h"

/* the body for url (malloc'ed), or NULL when it is none of the dashboard's */
char *wa_dashboard(const char *url, wa_link_t *l, const wa_options_t *o,
    size_t *len, int *status);
const char *wa_dashboard_type(const char *url);

/* the business numbers' state as JSON (the dashboard's and the gauges') */
json_t *wa_dashboard_numbers(wa_link_t *l, const wa_options_t *o,
    int contacts, char *today, size_t size);

/*
 * The business portfolios of those numbers as JSON, each with its limit,
 * users reached in 24 h and numbers; each number gets its "portfolio"
 */
json_t *wa_dashboard_portfolios(wa_link_t *l, const wa_options_t *o,
    json_t *numbers);

#endif /* WA_DASHBOARD_H */
