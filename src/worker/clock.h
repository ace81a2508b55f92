/*
 * wa-relayd: the clocks: monotonic for intervals, the epoch for what Redis
 * keeps.
 */

#ifndef WA_CLOCK_H
#define WA_CLOCK_H

long long wa_clock_ms(void);            /* monotonic, for intervals */
long long wa_clock_wall_ms(void);       /* the epoch, for what Redis keeps */

/* sleeps ms; a signal cuts it short, which is what callers want */
void wa_clock_sleep_ms(long ms);

#endif /* WA_CLOCK_H */
