/*
 * wa-relayd: pacing.  A fixed table, open addressing over a few probes; a
 * key whose time has passed is forgotten, so the table never needs more
 * than the keys active within one interval (recipients: the pair
 * interval).  When every probe is busy the slot that frees first is taken
 * over, which can only make that key wait less: Meta's 131056 then tells.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pace.h"

#define PROBES  8


void
wa_pace_free(wa_pace_t *p)
{
    free(p->slots);
    p->slots = NULL;
}


int
wa_pace_init(wa_pace_t *p, size_t n)
{
    p->slots = calloc(n, sizeof(wa_pace_slot_t));
    p->n = n;

    return p->slots ? 0 : -1;
}


static uint64_t
hash(const char *s)
{
    uint64_t  h = 1469598103934665603ULL;       /* FNV-1a */

    while (*s) {
        h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
    }

    return h;
}


static wa_pace_slot_t *
lookup(wa_pace_t *p, const char *key, long long now)
{
    size_t        i, at;
    wa_pace_slot_t  *s, *free_slot, *oldest;

    at = hash(key) % p->n;
    free_slot = NULL;
    oldest = &p->slots[at];

    for (i = 0; i < PROBES; i++) {
        s = &p->slots[(at + i) % p->n];

        if (strcmp(s->key, key) == 0) {
            return s;
        }

        if (free_slot == NULL && (s->key[0] == '\0' || s->tat <= now)) {
            free_slot = s;
        }

        if (s->tat < oldest->tat) {
            oldest = s;
        }
    }

    s = free_slot ? free_slot : oldest;
    strncpy(s->key, key, sizeof(s->key) - 1);
    s->key[sizeof(s->key) - 1] = '\0';
    s->tat = 0;

    return s;
}


long long
wa_pace_wait(wa_pace_t *p, const char *key, long long now, double burst)
{
    double        tat;
    wa_pace_slot_t  *s;

    s = lookup(p, key, now);
    tat = s->tat > now ? s->tat : (double) now;

    return tat - now > burst ? (long long) (tat - now - burst) + 1 : 0;
}


long long
wa_pace_take(wa_pace_t *p, const char *key, long long now, double interval,
    double burst)
{
    double        tat;
    long long     wait;
    wa_pace_slot_t  *s;

    wait = wa_pace_wait(p, key, now, burst);
    if (wait) {
        return wait;
    }

    s = lookup(p, key, now);
    tat = s->tat > now ? s->tat : (double) now;
    s->tat = tat + interval;

    return 0;
}


void
wa_pace_hold(wa_pace_t *p, const char *key, long long until)
{
    wa_pace_slot_t  *s;

    s = lookup(p, key, until);

    if (s->tat < until) {
        s->tat = (double) until;
    }
}
