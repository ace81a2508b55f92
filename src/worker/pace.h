/*
 * wa-relayd: a sender's own copy of its numbers' pace (GCRA: each key has
 * a theoretical arrival time; one more may go when it is not later than
 * now plus the burst allowance), so that a number told to wait is not
 * asked about before its time.  The pace every sender shares, and the
 * recipients' pair limit, are kept in Redis by the governor (wa_govern_1).
 */

#ifndef WA_PACE_H
#define WA_PACE_H

#include <stddef.h>

typedef struct {
    char    key[96];
    double  tat;                    /* ms, monotonic */
} wa_pace_slot_t;

typedef struct {
    wa_pace_slot_t  *slots;
    size_t        n;
} wa_pace_t;

int wa_pace_init(wa_pace_t *p, size_t n);
void wa_pace_free(wa_pace_t *p);

/* ms to wait before one more may go under key; 0: now */
long long wa_pace_wait(wa_pace_t *p, const char *key, long long now,
    double burst);

/* the same, and when it is 0 the slot is taken */
long long wa_pace_take(wa_pace_t *p, const char *key, long long now,
    double interval, double burst);

/* nothing under key before until (a 130429 from Meta) */
void wa_pace_hold(wa_pace_t *p, const char *key, long long until);

#endif /* WA_PACE_H */
