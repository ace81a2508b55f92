/*
 * wa-relayd: business portfolios.  Since 2025-10-07 Meta's messaging limit
 * belongs to the business portfolio, shared by all its numbers.  Webhooks
 * name the WABA, not the portfolio: by default each WABA is a portfolio of
 * its own; --portfolio ID=WABA[,WABA...] declares the WABAs of one, and
 * wa-relayd writes that into Redis so that every worker agrees:
 *
 *   <prefix>:portfolio:<id>   "wabas" -> "WABA,WABA"  (the id's partition)
 *   <prefix>:waba:<waba>      "portfolio" -> <id>      (the WABA's)
 *
 * The limit, the users reached and the reservations are redis/wa_state.lua's
 * (wa_reach_1); the sender's side of them is sender_reach.c.
 */

#ifndef WA_PORTFOLIO_H
#define WA_PORTFOLIO_H

#include <stdatomic.h>

#include "options.h"

#define WA_PORTFOLIO_ID_MAX  64

/* one declaration: the portfolio's id, its WABAs ("W1,W2") */
typedef int (*wa_portfolio_pt)(const char *id, const char *wabas,
    void *data);

/*
 * Each declaration of spec ("ID=WABA,...;ID=..."), given to cb when not
 * NULL: 0, or -1 after printing why (a bad declaration) or cb's -1
 */
int wa_portfolios_parse(const char *spec, wa_portfolio_pt cb, void *data);

/* o->portfolio written into Redis: 0, or -1 (logged) */
int wa_portfolios_publish(const wa_options_t *o, atomic_int *stop);

#endif /* WA_PORTFOLIO_H */
