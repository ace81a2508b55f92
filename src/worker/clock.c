/*
 * wa-relayd: the clocks.
 */

#include <time.h>

#include "clock.h"


long long
wa_clock_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


long long
wa_clock_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


long long
wa_clock_wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
wa_clock_due(long long now, long long *next, long long interval)
{
    if (now < *next) {
        return 0;
    }

    *next = now + interval;

    return 1;
}


void
wa_clock_sleep_ms(long ms)
{
    struct timespec  ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    nanosleep(&ts, NULL);
}
