/*
 * direct_frame.h — the private socket read by the daemon before sd-bus reads it.
 *
 * sd-bus reads a message whole, with every descriptor sent along with it,
 * before anyone can look at it, and shows nothing of the header fields it
 * does not know or of bytes after the last argument. So a direct client's
 * bytes go through this scanner first (direct.c forwards them to sd-bus on
 * a socketpair): it sees each message's fixed header and header fields
 * before its body, and refuses what no client of ours sends.
 */
#ifndef TS_BUS_DIRECT_FRAME_H
#define TS_BUS_DIRECT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tokenseal.h"

/*
 * One message from a direct client (and the bounds the bus filter uses), as dbus-daemon bounds one on the system
 * bus: at most 32 MiB (its max_message_size, so whatever a client sends over
 * the bus fits here; an UnwrapBatch of TS_BATCH_MAX blobs of 32-byte keys is
 * 10.8 MB) and at most 2 file descriptors (the most any method takes:
 * AddProtector, RotateRecoveryKey). A client past either is disconnected.
 */
#define TS_DIRECT_MESSAGE_MAX (32u << 20)
#define TS_DIRECT_FDS_MAX 2
/*
 * And at most this many values (arguments, containers, array items): the
 * largest call, an UnwrapBatch of TS_BATCH_MAX blobs with a full context,
 * has about TS_BATCH_MAX + 200. It bounds the time the check itself takes
 * (about 0.1 µs a value), where 32 MiB of empty strings would be millions.
 */
#define TS_DIRECT_VALUES_MAX (TS_BATCH_MAX + 4096)

/* The SASL exchange before the first message (sd-bus's own limit is 64 KiB; ours send under 100 bytes). */
#define TS_FRAME_AUTH_MAX 4096
/* Header fields of one message: a path, an interface, a member, a signature, a destination, a reply serial and a descriptor count come to well under 1 KiB. */
#define TS_FRAME_FIELDS_MAX 4096
/*
 * A message to any method but the data methods (Wrap, Unwrap, Rewrap,
 * GenerateDataKey, UnwrapBatch, RewrapBatch and their packed forms), and anything that is not a
 * method call: at most this many bytes. The largest legitimate one,
 * SetEscrow with 16 RSA-4096 recipients, is under 48 KiB; the methods that
 * wait (for polkit, a secret fd, a token helper) hold their message
 * meanwhile, and hold no more than this.
 */
#define TS_FRAME_SMALL_MAX (128u << 10)

enum { TS_FRAME_AUTH, TS_FRAME_HEADER, TS_FRAME_BODY };

typedef struct ts_frame {
	int phase;                      /* where the next byte belongs */
	size_t auth_seen;               /* bytes of the SASL exchange so far */
	int auth_step;                  /* which SASL lines may come next (direct_frame.c) */
	int external;                   /* the mechanism named is EXTERNAL */
	uint64_t body_left;             /* of the message being read */
	uint32_t last_serial;           /* of the last message: a serial may not repeat at once */
	uint32_t max_size;              /* bytes of one message (header, fields, body) */
	unsigned max_fds;               /* descriptors one message may carry */
} ts_frame;

/* One message's header, as the scanner read it. */
typedef struct ts_frame_msg {
	uint32_t serial;
	uint32_t body_size;             /* bytes of its body, as its header says */
	uint32_t size;                  /* header, fields, padding and body */
	unsigned fds;                   /* its UNIX_FDS field: descriptors that must come with it */
	int data_method;                /* a call of a data method (may be up to max_size) */
} ts_frame_msg;

void ts_frame_init(ts_frame *f, uint32_t max_size, unsigned max_fds);
/* Is member (of interface iface, or of none named) one of the data methods, whose calls may be large? */
int ts_frame_data_method(const char *iface, const char *member);

/*
 * Look at the next bytes of the stream, buf[0..len), which begin where the
 * last accepted segment ended. Returns how many of them make the next
 * segment that may be passed on (never more than one message's, and for a
 * message's first segment its whole header): 0 when more bytes are needed
 * first, or a negative errno when the stream breaks a rule, with *why
 * saying which (for a log line). *got is set to 1 when the segment begins
 * a message, whose header is then in *msg (its descriptors go with this
 * segment); 0 otherwise.
 */
long ts_frame_next(ts_frame *f, const uint8_t *buf, size_t len, ts_frame_msg *msg, int *got, const char **why);

#endif
