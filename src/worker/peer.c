/*
 * wa-relayd: a link to each partition, shared by the threads of the
 * process (peer.h).
 */

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "part.h"
#include "peer.h"
#include "wa_partition.h"

typedef struct {
    pthread_mutex_t   lock;
    wa_part_t         part;
    wa_link_t         link;
} wa_peer_t;

static wa_peer_t  *wa_peers;
static long        wa_npeers;


int
wa_peers_init(const wa_options_t *o)
{
    long        p;
    wa_peer_t  *peer;

    wa_peers = calloc(o->partitions, sizeof(wa_peer_t));
    if (wa_peers == NULL) {
        return -1;
    }

    wa_npeers = o->partitions;

    for (p = 0; p < o->partitions; p++) {
        peer = &wa_peers[p];
        pthread_mutex_init(&peer->lock, NULL);

        if (wa_part_init(&peer->part, o, (unsigned) p) != 0) {
            return -1;
        }

        wa_link_init(&peer->link, o, peer->part.slot, "peer: ");
    }

    return 0;
}


void
wa_peers_free(void)
{
    long  p;

    for (p = 0; p < wa_npeers; p++) {
        wa_link_close(&wa_peers[p].link);
        pthread_mutex_destroy(&wa_peers[p].lock);
    }

    free(wa_peers);
    wa_peers = NULL;
    wa_npeers = 0;
}


wa_link_t *
wa_peer_lock(unsigned p, const char **prefix, atomic_int *stop)
{
    wa_peer_t  *peer;

    if ((long) p >= wa_npeers) {
        return NULL;
    }

    peer = &wa_peers[p];
    pthread_mutex_lock(&peer->lock);

    /* one attempt: the caller's own loop waits and tries again */
    if (peer->link.c == NULL && wa_link_connect(&peer->link, stop) != 0) {
        pthread_mutex_unlock(&peer->lock);
        return NULL;
    }

    *prefix = peer->part.prefix;

    return &peer->link;
}


void
wa_peer_unlock(unsigned p)
{
    pthread_mutex_unlock(&wa_peers[p].lock);
}


wa_link_t *
wa_peer_of(const char *id, wa_link_t *own, const char *own_prefix,
    const char **prefix, atomic_int *stop)
{
    if (wa_npeers <= 1) {
        *prefix = own_prefix;
        return own;
    }

    return wa_peer_lock(wa_partition_of(id, strlen(id), (unsigned) wa_npeers),
                        prefix, stop);
}


void
wa_peer_done(wa_link_t *l, wa_link_t *own)
{
    wa_peer_t  *peer;

    if (l != NULL && l != own) {
        peer = (wa_peer_t *) ((char *) l - offsetof(wa_peer_t, link));
        wa_peer_unlock((unsigned) (peer - wa_peers));
    }
}
