/*
 * wa-relayd: the clocks: monotonic for intervals, the epoch for what Redis
 * keeps.
 */

#ifndef WA_CLOCK_H
#define WA_CLOCK_H

long long wa_clock_ms(void);            /* monotonic, for intervals */
long long wa_clock_us(void);            /* the same in microseconds */
long long wa_clock_wall_ms(void);       /* the epoch, for what Redis keeps */

/* sleeps ms; a signal cuts it short, which is what callers want */
void wa_clock_sleep_ms(long ms);

/* a periodic task is due at now: 1, and *next is set an interval later */
int wa_clock_due(long long now, long long *next, long long interval);

#endif /* WA_CLOCK_H */
