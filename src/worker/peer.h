/*
 * wa-relayd: a link to each partition, for the threads that must read a
 * partition other than their own (the sender reads a WABA's state where
 * the WABA's events put it).  Shared by the threads of the process: each
 * is connected on first use and used under its own lock.
 */

#ifndef WA_PEER_H
#define WA_PEER_H

#include <stdatomic.h>

#include "link.h"
#include "options.h"

/* o: the process's options, whose prefix is the one above partitions */
int wa_peers_init(const wa_options_t *o);
void wa_peers_free(void);

/*
 * Partition p's link, connected and locked, and its prefix; NULL when it
 * cannot be connected now (logged).  wa_peer_unlock(p) after use.
 */
wa_link_t *wa_peer_lock(unsigned p, const char **prefix, atomic_int *stop);
void wa_peer_unlock(unsigned p);

/*
 * The link of the partition of an id (a WABA, a portfolio), locked, and
 * its prefix; with one partition, own and own_prefix: the caller's link.
 * NULL when it cannot be connected now.  wa_peer_done(l, own) after use.
 */
wa_link_t *wa_peer_of(const char *id, wa_link_t *own, const char *own_prefix,
    const char **prefix, atomic_int *stop);
void wa_peer_done(wa_link_t *l, wa_link_t *own);

#endif /* WA_PEER_H */
