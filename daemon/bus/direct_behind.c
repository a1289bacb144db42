/* direct_behind.c — how long the daemon's loop has been behind (stopped or busy), measured by a beat that runs while a private-socket deadline does. */
#include "bus/direct_behind.h"
#include "bus/direct_io.h"
#include "core/clock.h"

static sd_event_source *beat;
static uint64_t behind, beat_due;

/* µs a beat due at due is late now, past the slack. */
static uint64_t late(uint64_t due, uint64_t now)
{
	return now > due + TS_DIRECT_BEAT_SLACK_USEC ? now - due : 0;
}

/* Does any client have a deadline running: a large message coming, or answers waiting unsent? */
static int any_deadline(ts_daemon *d)
{
	for (ts_direct_conn *c = d->direct; c; c = c->next)
		if (c->io->unread_timed || c->io->sent < c->io->big_end)
			return 1;
	return 0;
}

static int on_beat(sd_event_source *s, uint64_t usec, void *userdata)
{
	uint64_t now = ts_mono_usec();

	behind += late(usec, now);
	if (!any_deadline(userdata)) {
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return 0;
	}
	beat_due = now + TS_DIRECT_BEAT_USEC;
	if (sd_event_source_set_time(s, beat_due) < 0 || sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0)
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
}

int ts_direct_behind_watch(ts_daemon *d)
{
	int enabled = SD_EVENT_OFF, r;

	if (beat && sd_event_source_get_enabled(beat, &enabled) >= 0 && enabled != SD_EVENT_OFF)
		return 0;
	beat_due = ts_mono_usec() + TS_DIRECT_BEAT_USEC;
	/* Accuracy 1 µs: sd-event's default would run it up to 250 ms late on purpose. */
	if (!beat)
		return sd_event_add_time(d->event, &beat, CLOCK_MONOTONIC, beat_due, 1, on_beat, d);
	if ((r = sd_event_source_set_time(beat, beat_due)) < 0)
		return r;
	return sd_event_source_set_enabled(beat, SD_EVENT_ONESHOT);
}

uint64_t ts_direct_behind(void)
{
	int enabled = SD_EVENT_OFF;

	if (beat && sd_event_source_get_enabled(beat, &enabled) >= 0 && enabled != SD_EVENT_OFF)
		return behind + late(beat_due, ts_mono_usec());
	return behind;
}

void ts_direct_behind_stop(void)
{
	beat = sd_event_source_disable_unref(beat);
}
