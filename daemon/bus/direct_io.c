/*
 * direct_io.c — a private-socket client's bytes on their way to sd-bus
 * (direct.c): read from the client's socket, checked by the scanner
 * (direct_frame.c) and passed on over the daemon's socketpair, a message
 * at a time; and the headers passed on, until sd-bus meets each message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/direct_io.h"

void ts_dio_free(struct ts_direct_io *io)
{
	if (!io)
		return;
	sd_event_source_disable_unref(io->in_src);
	sd_event_source_disable_unref(io->out_src);
	sd_event_source_disable_unref(io->deadline);
	sd_event_source_disable_unref(io->unread);
	for (unsigned i = 0; i < io->n_fds; i++)
		close(io->fds[i]);
	for (unsigned i = 0; i < io->n_out_fds; i++)
		close(io->out_fds[i]);
	if (io->pfd >= 0)
		close(io->pfd);
	/* Ours; the descriptor it was copied from is sd-bus's output, which sd-bus closes. */
	if (io->cfd >= 0)
		close(io->cfd);
	free(io);
}

/*
 * Pass the accepted segment on to sd-bus: 1 when all of it went, 0 when the
 * socketpair is full (the rest waits for on_pair_writable), or a negative
 * errno.
 */
static int io_flush(struct ts_direct_io *io)
{
	while (io->out > 0) {
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(int) * TS_DIRECT_FDS_MAX)];
		} ctl;
		struct iovec iov = { .iov_base = io->buf, .iov_len = io->out };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t k;

		if (io->n_out_fds > 0) {
			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = &ctl;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * io->n_out_fds);
			ctl.h.cmsg_level = SOL_SOCKET;
			ctl.h.cmsg_type = SCM_RIGHTS;
			ctl.h.cmsg_len = CMSG_LEN(sizeof(int) * io->n_out_fds);
			memcpy(CMSG_DATA(&ctl.h), io->out_fds, sizeof(int) * io->n_out_fds);
		}
		if ((k = sendmsg(io->pfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		/* In flight now: the kernel holds its own references until sd-bus takes them. */
		for (unsigned i = 0; i < io->n_out_fds; i++)
			close(io->out_fds[i]);
		io->n_out_fds = 0;
		io->sent += (uint64_t)k;
		memmove(io->buf, io->buf + k, io->len - (size_t)k);
		io->len -= (size_t)k;
		io->out -= (size_t)k;
		/* What was passed on (a Wrap's plaintext, a PIN's fd number) must not stay behind the kept bytes. */
		explicit_bzero(io->buf + io->len, (size_t)k);
	}
	return 1;
}

/*
 * sd-bus has sent every answer of c (or handed it to the kernel, whose
 * socket buffer is bounded): its large calls no longer hold a share.
 */
static void io_settle(ts_direct_conn *c)
{
	uint64_t unsent = 0;

	if (c->io->held > 0 && sd_bus_get_n_queued_write(c->bus, &unsent) >= 0 && unsent == 0)
		c->io->held = 0;
}

uint64_t (*ts_dio_asked)(ts_daemon *d, uid_t uid, uint64_t *all);

uint64_t ts_dio_large_bytes(ts_daemon *d, uid_t uid, uint64_t *all)
{
	uint64_t of_uid = 0;

	*all = 0;
	for (ts_direct_conn *o = d->direct; o; o = o->next) {
		io_settle(o);
		*all += o->uid != 0 ? o->io->big + o->io->held : 0;
		of_uid += o->uid == uid ? o->io->big + o->io->held : 0;
	}
	return of_uid;
}

/*
 * A message larger than TS_FRAME_SMALL_MAX (a data method's, up to 32 MiB)
 * is held whole by sd-bus while it is read, and its answer, about as large,
 * until the client reads it; a call waiting for polkit is held there: such
 * messages of one uid, on all its connections and waiting for polkit, may
 * add up to TS_DIRECT_BIG_PER_UID, and of all clients but root's to
 * TS_DIRECT_BIG_OTHERS (root's share is kept for root). 0, or -EBADMSG
 * with *why.
 */
static int big_allowed(ts_direct_conn *c, uint32_t size, const char **why)
{
	uint64_t all_asked, all_big, uid_big = ts_dio_large_bytes(c->d, c->uid, &all_big) + size;

	all_asked = 0;
	uid_big += ts_dio_asked ? ts_dio_asked(c->d, c->uid, &all_asked) : 0;
	all_big += all_asked + size;
	if (uid_big > TS_DIRECT_BIG_PER_UID || (c->uid != 0 && all_big > TS_DIRECT_BIG_OTHERS)) {
		*why = uid_big > TS_DIRECT_BIG_PER_UID ? "large messages being read or answered past this uid's share"
		                                       : "large messages being read or answered past the daemon's share";
		return -EBADMSG;
	}
	return 0;
}

/*
 * Scan what was read and pass it on, a segment at a time: 0 when all that
 * can go went (or the socketpair is full, or sd-bus has IO_QUEUE messages
 * to take), a negative errno with *why when the client broke a rule.
 */
static int io_scan(ts_direct_conn *c, const char **why)
{
	struct ts_direct_io *io = c->io;
	int r;

	while ((r = io_flush(io)) > 0 && io->len > 0) {
		ts_frame_msg msg;
		int got;
		long n;

		/* sd-bus takes a message a turn: a client that sends faster waits (its socket fills). */
		if (io->frame.phase == TS_FRAME_HEADER && io->q_n == IO_QUEUE) {
			io->stalled = 1;
			return 0;
		}
		/*
		 * And no new message while answers to this client wait to be sent (it
		 * does not read them): what it could make the daemon hold in answers
		 * is then those of the messages already passed on, not one per call
		 * it keeps sending (an UnwrapBatch's answer may be 32 MiB).
		 */
		uint64_t unsent = 0;
		if (io->frame.phase == TS_FRAME_HEADER && sd_bus_get_n_queued_write(c->bus, &unsent) >= 0 && unsent > 0) {
			io->stalled = io->unflushed = 1;
			return 0;
		}
		if ((n = ts_frame_next(&io->frame, io->buf, io->len, &msg, &got, why)) < 0)
			return (int)n;
		if (n == 0)
			break;
		if (got) {
			if (msg.fds > io->n_fds) {
				*why = "a message whose file descriptors did not come with its header";
				return -EBADMSG;
			}
			/* Each serial once in the queue: a message sd-bus dropped cannot be taken for another. */
			for (unsigned i = 0; i < io->q_n; i++)
				if (io->queue[(io->q_head + i) % IO_QUEUE].serial == msg.serial) {
					*why = "a message whose serial is that of one not yet read";
					return -EBADMSG;
				}
			if (msg.size > TS_FRAME_SMALL_MAX && (r = big_allowed(c, msg.size, why)) < 0)
				return r;
			memcpy(io->out_fds, io->fds, sizeof(int) * msg.fds);
			io->n_out_fds = msg.fds;
			memmove(io->fds, io->fds + msg.fds, sizeof(int) * (io->n_fds - msg.fds));
			io->n_fds -= msg.fds;
			io->q_end[(io->q_head + io->q_n) % IO_QUEUE] = io->sent + msg.size;
			io->queue[(io->q_head + io->q_n++) % IO_QUEUE] = msg;
			if (msg.size > TS_FRAME_SMALL_MAX) {
				io->big += msg.size;
				io->big_end = io->sent + msg.size;
				io->big_new = 1;
			}
		}
		io->out = (size_t)n;
	}
	if (r < 0) {
		*why = "the daemon's own socketpair failed";
		return r;
	}
	/* Descriptors wait only for the header they came with, while it is still coming. */
	if (r > 0 && io->n_fds > 0 && !(io->frame.phase == TS_FRAME_HEADER && io->len > 0)) {
		*why = "file descriptors that came with no message's header";
		return -EBADMSG;
	}
	return 0;
}

/* Read what the client sent: 1 when something came, 0 when nothing (yet), a negative errno. */
static int io_read(struct ts_direct_io *io, const char **why)
{
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(int) * (TS_DIRECT_FDS_MAX + 1))];
	} ctl;
	struct iovec iov = { .iov_base = io->buf + io->len, .iov_len = sizeof(io->buf) - io->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
	ssize_t k;
	int r = 1;

	if (iov.iov_len == 0) {
		/* A header and the SASL exchange are bounded well under IO_BUF: the scanner always takes something. */
		*why = "a message the daemon cannot read";
		return -EBADMSG;
	}
	if ((k = recvmsg(io->cfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (io->n_fds < TS_DIRECT_FDS_MAX && io->frame.phase != TS_FRAME_AUTH)
				io->fds[io->n_fds++] = fd;
			else {
				close(fd);
				r = -EBADMSG;
			}
		}
	}
	if (r < 0 || (mh.msg_flags & MSG_CTRUNC)) {
		*why = io->frame.phase == TS_FRAME_AUTH ? "file descriptors while authenticating"
		                                        : "more file descriptors than a message may carry";
		return -EBADMSG;
	}
	if (k == 0) {
		/* The client is done sending: sd-bus still answers what it sent, then sees the end (io_arm). */
		io->eof = 1;
		return 0;
	}
	io->len += (size_t)k;
	return 1;
}

/*
 * Read only while sd-bus keeps up: the client's socket holds the rest.
 * Wait for the socketpair while a segment is left to pass on, or while
 * scanning stopped for sd-bus (ts_dio_take starts it again through the
 * same source). Once the client is done and all it sent went on, sd-bus is told.
 */
static void io_arm(struct ts_direct_io *io)
{
	int blocked = io->out > 0, kick = io->stalled && !io->unflushed && io->q_n < IO_QUEUE;

	(void)sd_event_source_set_enabled(io->out_src, blocked || kick ? SD_EVENT_ON : SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(io->in_src, !io->eof && !blocked && !io->stalled ? SD_EVENT_ON : SD_EVENT_OFF);
	if (io->eof && !blocked && !io->stalled && !io->shut) {
		(void)shutdown(io->pfd, SHUT_WR);
		io->shut = 1;
	}
}

int ts_dio_pump(ts_direct_conn *c, const char **why)
{
	struct ts_direct_io *io = c->io;
	int r;

	*why = NULL;
	io->stalled = io->unflushed = 0;
	if ((r = io_scan(c, why)) >= 0 && io->out == 0 && !io->stalled && !io->eof && (r = io_read(io, why)) > 0)
		r = io_scan(c, why);
	if (r < 0)
		return r;
	io_arm(io);
	return 0;
}

/*
 * The scanner's headers come in the order sd-bus reads the messages; one
 * sd-bus skipped (it drops a message it cannot parse) no longer matches
 * the next serial.
 */
int ts_dio_take(ts_direct_conn *c, sd_bus_message *m, ts_frame_msg *ret)
{
	struct ts_direct_io *io = c->io;
	uint64_t cookie;

	if (io->q_n == 0 || sd_bus_message_get_cookie(m, &cookie) < 0 ||
	    cookie != io->queue[io->q_head].serial)
		return 0;
	*ret = io->queue[io->q_head];
	if (ret->size > TS_FRAME_SMALL_MAX) {
		io->big -= ret->size;
		ts_dio_hold(c, ret->size);
	}
	io->q_head = (io->q_head + 1) % IO_QUEUE;
	io->q_n--;
	/* Room again: what is already read goes on (on_pair_writable, from the loop: c may go there). */
	io_arm(io);
	return 1;
}

void ts_dio_resume(ts_direct_conn *c)
{
	uint64_t unsent = 0;

	io_settle(c);
	if (c->io->unflushed && sd_bus_get_n_queued_write(c->bus, &unsent) >= 0 && unsent == 0) {
		c->io->unflushed = 0;
		io_arm(c->io);
	}
}

void ts_dio_hold(ts_direct_conn *c, uint64_t size)
{
	if (size > TS_FRAME_SMALL_MAX)
		c->io->held += size;
}

void ts_dio_unhold(ts_direct_conn *c, uint64_t size)
{
	if (size > TS_FRAME_SMALL_MAX)
		c->io->held -= size < c->io->held ? size : c->io->held;
}

int ts_dio_dropped(ts_direct_conn *c)
{
	struct ts_direct_io *io = c->io;
	uint64_t reading = 0;
	int unread = 1;

	return io->q_n > 0 && io->sent >= io->q_end[io->q_head] && ioctl(io->pfd, SIOCOUTQ, &unread) == 0 &&
	       unread == 0 && sd_bus_get_n_queued_read(c->bus, &reading) >= 0 && reading == 0;
}
