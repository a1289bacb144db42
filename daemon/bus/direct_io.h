/* direct_io.h — a private-socket client's bytes on their way to sd-bus (direct_io.c), for direct.c. */
#ifndef TS_BUS_DIRECT_IO_H
#define TS_BUS_DIRECT_IO_H

#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/direct_frame.h"
#include "bus/state.h"

/*
 * Messages larger than TS_FRAME_SMALL_MAX being read (sd-bus holds each
 * whole until it is read), and those read whose answers may wait unsent
 * (an answer to a large call is about as large: a RewrapBatch's blobs, a
 * Wrap's), with the calls waiting for polkit (polkit.c, which keeps to the
 * same shares): per uid, over all its connections, and in all. A client
 * whose message would go past either is disconnected.
 */
#define TS_DIRECT_BIG_PER_UID (64ull << 20)
#define TS_DIRECT_BIG_MAX (256ull << 20)
/*
 * ... of which all uids but root may hold this much together: root's share
 * is kept for root (a login's PAM module, a system service), whatever the
 * other uids hold. Root's own are bound by TS_DIRECT_BIG_PER_UID only.
 */
#define TS_DIRECT_BIG_OTHERS (TS_DIRECT_BIG_MAX - TS_DIRECT_BIG_PER_UID)
/* ... and each must come whole within this long of its header (a client holding one half-sent holds its share). */
#define TS_DIRECT_BIG_USEC (10ull * 1000000)
/*
 * ... these deadlines judge the client, not a stopped or loaded loop: they
 * move on by as long as the loop was behind meanwhile (direct_behind.h),
 * and while bytes the client sent wait for the daemon they are looked at
 * again TS_DIRECT_AGAIN_USEC later; never past TS_DIRECT_LATE_USEC.
 */
#define TS_DIRECT_LATE_USEC (60ull * 1000000)
#define TS_DIRECT_AGAIN_USEC (2ull * 1000000)

/* Bytes read from a client at a time, and messages passed on to sd-bus that it has not taken yet. */
#define IO_BUF (64u << 10)
#define IO_QUEUE 64

/*
 * A client's bytes between its socket and sd-bus. buf[0..len) is read and
 * not yet passed on; its first out bytes are the rest of a segment the
 * scanner accepted (with out_fds, when none of it went yet). fds came with
 * bytes not yet scanned. queue holds the headers of the messages passed on,
 * oldest first, until on_incoming meets each.
 */
struct ts_direct_io {
	int cfd, pfd;
	sd_event_source *in_src, *out_src;
	ts_frame frame;
	size_t len, out;
	int fds[TS_DIRECT_FDS_MAX], out_fds[TS_DIRECT_FDS_MAX];
	unsigned n_fds, n_out_fds;
	ts_frame_msg queue[IO_QUEUE];
	uint64_t q_end[IO_QUEUE];       /* where each queued message ends in the stream (sent) */
	unsigned q_head, q_n;
	uint64_t big;                   /* bytes of the queued messages larger than TS_FRAME_SMALL_MAX */
	uint64_t held;                  /* ... and of those taken since sd-bus last had no answer unsent */
	sd_event_source *unread;        /* direct.c: sd-bus must have sent what waits unsent by then */
	int unread_timed;               /* ... and it is armed */
	uint64_t unread_since;          /* ... since then */
	uint64_t unread_behind;         /* ... when the loop had been behind this long (direct_behind.h) */
	uint64_t big_end;               /* where the last such message ends in the stream (sent) */
	int big_new;                    /* one began: direct.c (re)arms deadline */
	sd_event_source *deadline;      /* direct.c: the last large message must be sent whole by then */
	uint64_t big_since;             /* ... whose header came then (ts_mono_usec) */
	uint64_t big_behind;            /* ... when the loop had been behind this long (direct_behind.h) */
	int stalled;                    /* scanning stopped with the queue full: resume when sd-bus takes one */
	int unflushed;                  /* ... or with answers queued unsent: resume when they went (ts_dio_resume) */
	int eof, shut;                  /* the client is done sending; sd-bus was told so */
	uint64_t sent;                  /* bytes passed on to sd-bus */
	uint8_t buf[IO_BUF];
};

void ts_dio_free(struct ts_direct_io *io);
/*
 * Scan what is read, pass it on, read what the client sent: 0, or a
 * negative errno, with *why set when the client broke a rule (for the log
 * line) and NULL when the socket failed.
 */
int ts_dio_pump(ts_direct_conn *c, const char **why);
/*
 * sd-bus delivers m: 1 with the header the scanner passed on for it in
 * *ret, or 0 when it is not the next one passed on (sd-bus dropped one).
 */
int ts_dio_take(ts_direct_conn *c, sd_bus_message *m, ts_frame_msg *ret);
/*
 * After a turn of the loop: once the answers a client left unread went
 * out, its large calls no longer count against the shares, and messages
 * are passed on again.
 */
void ts_dio_resume(ts_direct_conn *c);
/* A large call taken again (it waited for polkit or a helper): its answer counts against the shares until it went. */
void ts_dio_hold(ts_direct_conn *c, uint64_t size);
/* A large call taken now waits for polkit, which counts it meanwhile (not twice). */
void ts_dio_unhold(ts_direct_conn *c, uint64_t size);
/* The bytes of uid's large messages being read or answered on its direct connections; *all: of every uid's but root's. */
uint64_t ts_dio_large_bytes(ts_daemon *d, uid_t uid, uint64_t *all);
/*
 * The same of the calls waiting for polkit (ts_polkit_bytes, set by
 * direct.c: polkit.c counts these messages in turn, and a module may not
 * include a header of one that includes its own).
 */
extern uint64_t (*ts_dio_asked)(ts_daemon *d, uid_t uid, uint64_t *all);
/*
 * A client that leaves answers or signals unsent this long (past its
 * socket's buffer: it does not read) goes; an answer to a large call holds
 * its uid's share meanwhile.
 */
#define TS_DIRECT_UNREAD_USEC (10ull * 1000000)
/* Did sd-bus drop the next message passed on (it read all there is, holds nothing and never met it)? */
int ts_dio_dropped(ts_direct_conn *c);

#endif
