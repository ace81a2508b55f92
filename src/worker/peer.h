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

#endif /* WA_PEER_H */
