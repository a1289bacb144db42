/* secretfd.c — secrets in and out through a caller's file descriptor, bounded in size and time. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bus/daemon.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline. 0 when ready, -TS_E_TIMEOUT or -TS_E_IO. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return -TS_E_TIMEOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -TS_E_IO;
		if (n == 0)
			return -TS_E_TIMEOUT;
		if (pfd.revents & POLLNVAL)
			return -TS_E_INVALID_ARGS;
		/* POLLHUP with data still buffered is normal for a closed pipe: read decides. */
		if (pfd.revents & (events | POLLHUP | POLLERR))
			return 0;
	}
}

int ts_secretfd_read(int fd, uint8_t **ret, size_t *ret_len)
{
	/* One spare byte tells "exactly the maximum" from "too long". */
	uint8_t *buf = NULL;
	int64_t deadline = now_ms() + TS_SECRET_FD_TIMEOUT_MS;
	size_t len = 0;
	ssize_t n;
	int r;

	*ret = NULL;
	*ret_len = 0;
	if (fd < 0)
		return -TS_E_INVALID_ARGS;
	if ((buf = ts_secure_alloc(TS_SECRET_IN_MAX + 1)) == NULL)
		return -TS_E_NOMEM;
	for (;;) {
		if ((r = wait_fd(fd, POLLIN, deadline)) < 0)
			goto out;
		n = read(fd, buf + len, TS_SECRET_IN_MAX + 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			/* EISDIR, EINVAL (a write-only end) ...: not a readable secret. */
			r = -TS_E_INVALID_ARGS;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > TS_SECRET_IN_MAX) {
			r = -TS_E_LIMIT;
			goto out;
		}
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = 0;
	if (len == 0) {
		ts_secure_free(buf);
		return 0;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
out:
	ts_secure_free(buf);
	return r;
}

int ts_secretfd_write(int fd, const void *p, size_t len)
{
	int64_t deadline = now_ms() + TS_SECRET_FD_TIMEOUT_MS;
	const uint8_t *b = p;
	size_t done = 0;
	ssize_t n;
	int r;

	if (fd < 0)
		return -TS_E_INVALID_ARGS;
	while (done < len) {
		if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
			return r;
		/* MSG_NOSIGNAL is for sockets only; the daemon ignores SIGPIPE instead. */
		n = write(fd, b + done, len - done);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return errno == EBADF || errno == EINVAL ? -TS_E_INVALID_ARGS : -TS_E_IO;
		done += (size_t)n;
	}
	return 0;
}
