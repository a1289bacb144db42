/* clock.h — the clocks tokenseal reads, in one place: monotonic for deadlines and intervals, the wall clock for what is stored or shown. */
#ifndef TS_CLOCK_H
#define TS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in microseconds and milliseconds: timeouts, deadlines, intervals. */
static inline uint64_t ts_mono_usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static inline uint64_t ts_mono_ms(void)
{
	return ts_mono_usec() / 1000u;
}

/* CLOCK_REALTIME in microseconds (LockChanged) and seconds (times in vault files, ages). */
static inline uint64_t ts_now_usec(void)
{
	struct timespec t;

	if (clock_gettime(CLOCK_REALTIME, &t) < 0)
		return (uint64_t)time(NULL) * 1000000u;
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static inline uint64_t ts_now(void)
{
	return ts_now_usec() / 1000000u;
}

#endif
