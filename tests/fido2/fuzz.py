"""fuzz.py — feeds softfido random and mutated CTAPHID frames and CBOR requests; it must keep answering.

    fuzz.py --socket S --control C [--frames 20000] [--check-every 200] [--seed N]

Frames come in kinds: random reports on random or real channels, well-framed CTAP2
messages whose CBOR is a mutation of a valid request (bit flips, truncation, splices,
insertions, type swaps) or a random CBOR structure, half-sent messages, stray
continuation packets, CANCELs, reports of the wrong size, and the odd control
command (deny, power-cycle). Every --check-every frames a fresh python-fido2 client
must still do INIT, PING and getInfo. Exit status 0 when every check passed.
"""
import argparse
import os
import random
import select
import socket
import struct
import sys
import time

from fido2 import cbor
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Ctap2
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.utils import sha256

from softfido_hid import REPORT_LEN, control, open_device

BROADCAST = 0xFFFFFFFF
RND = random.Random()


def rbytes(n):
    """Fuzz bytes from the seeded generator, so --seed replays a run."""
    return bytes(RND.getrandbits(8) for _ in range(n))


class Conn:
    """A raw client connection; responses are drained and mostly ignored."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self.cids = []

    def send(self, data):
        try:
            self.sock.send(data)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            raise

    def drain(self, wait=0.0):
        """Reads whatever is there (waiting up to `wait` for the first report)."""
        got = []
        t = wait
        while True:
            r, _, _ = select.select([self.sock], [], [], t)
            if not r:
                return got
            p = self.sock.recv(REPORT_LEN + 1)
            if not p:
                raise ConnectionError("softfido closed the connection")
            got.append(p)
            t = 0

    def message(self, cid, cmd, data, bcnt=None):
        bcnt = len(data) if bcnt is None else bcnt
        self.send((struct.pack(">IBH", cid, 0x80 | cmd, bcnt) + data[:57]).ljust(REPORT_LEN, b"\0"))
        rest, seq = data[57:], 0
        while rest and seq < 128:
            self.send((struct.pack(">IB", cid, seq) + rest[:59]).ljust(REPORT_LEN, b"\0"))
            rest, seq = rest[59:], seq + 1

    def wait_reply(self, cid, timeout=5.0):
        """Reads until a non-keepalive init packet for cid arrives (or timeout)."""
        end = time.time() + timeout
        while time.time() < end:
            for p in self.drain(wait=max(0.0, end - time.time())):
                if struct.unpack(">I", p[:4])[0] == cid and p[4] & 0x80 and p[4] != 0x80 | 0x3B:
                    return p
        return None

    def init(self):
        nonce = os.urandom(8)
        self.message(BROADCAST, 0x06, nonce)
        end = time.time() + 5
        while time.time() < end:
            for p in self.drain(wait=1.0):
                if p[:5] == struct.pack(">IB", BROADCAST, 0x86) and p[7:15] == nonce:
                    cid = struct.unpack(">I", p[15:19])[0]
                    self.cids.append(cid)
                    return cid
        raise RuntimeError("no INIT answer")

    def close(self):
        self.sock.close()


def valid_requests(args):
    """A corpus of well-formed requests, including real credential ids and hmac-secret inputs."""
    ctap = Ctap2(open_device(args.socket))
    rp = {"id": "fuzz.example", "name": "f"}
    user = {"id": b"u" * 16, "name": "u", "displayName": "U"}
    att = ctap.make_credential(sha256(b"a"), rp, user, [{"type": "public-key", "alg": -7}],
                               extensions={"hmac-secret": True})
    cred = att.auth_data.credential_data.credential_id
    desc = [{"type": "public-key", "id": cred}]
    reqs = []

    def add(cmd, params):
        reqs.append(bytes([cmd]) + (cbor.encode(params) if params is not None else b""))

    add(0x04, None)
    add(0x01, {1: sha256(b"x"), 2: rp, 3: user, 4: [{"type": "public-key", "alg": -7}],
               5: desc, 6: {"hmac-secret": True}, 7: {"rk": False, "up": True}})
    add(0x01, {1: sha256(b"y"), 2: rp, 3: user, 4: [{"type": "public-key", "alg": -7}], 8: b"\0" * 16, 9: 2})
    for proto in (1, 2):
        from fido2.ctap2 import PinProtocolV1, PinProtocolV2
        p = (PinProtocolV1 if proto == 1 else PinProtocolV2)()
        ext = HmacSecretExtension(ctap, p)
        ext_in = ext.process_get_input({"hmacGetSecret": {"salt1": b"s" * 32, "salt2": b"t" * 32}})
        add(0x02, {1: rp["id"], 2: sha256(b"z"), 3: desc, 4: {"hmac-secret": ext_in},
                   5: {"up": False}, 6: b"\0" * 32, 7: proto})
        add(0x02, {1: rp["id"], 2: sha256(b"z"), 3: desc, 4: {"hmac-secret": ext_in}})
        cp = ClientPin(ctap, p)
        ka, ss = cp._get_shared_secret()
        enc = p.encrypt(ss, b"1234".ljust(64, b"\0"))
        add(0x06, {1: proto, 2: 3, 3: ka, 4: p.authenticate(ss, enc), 5: enc})
        add(0x06, {1: proto, 2: 9, 3: ka, 6: p.encrypt(ss, b"\0" * 16), 9: 3, 10: rp["id"]})
        add(0x06, {1: proto, 2: 5, 3: ka, 6: p.encrypt(ss, b"\0" * 16)})
        add(0x06, {1: proto, 2: 4, 3: ka, 4: b"\0" * 16, 5: enc, 6: p.encrypt(ss, b"\0" * 16)})
        add(0x06, {1: proto, 2: 2})
    add(0x06, {2: 1})
    add(0x0B, None)
    add(0x08, None)
    ctap.device.close()
    return reqs


def random_key(rnd):
    """A map key of any scalar type (CTAP wants integers or text)."""
    return rnd.choice([rnd.randrange(-30, 300), rnd.choice(["id", "type", "x", ""]), rbytes(2), True])


def random_cbor(rnd, depth=0):
    """Any CBOR the fido2 encoder can write, biased toward CTAP-looking shapes."""
    k = rnd.randrange(9 if depth < 6 else 6)
    if k == 0:
        return rnd.choice([0, 1, 23, 24, 255, 256, 65535, 2**32, 2**63 - 1, -1, -25, -7, -2**63])
    if k == 1:
        return rbytes(rnd.choice([0, 1, 16, 31, 32, 33, 64, 65, 80, 200]))
    if k == 2:
        return rnd.choice(["", "public-key", "id", "type", "alg", "hmac-secret", "rk", "up", "uv",
                           "x" * rnd.randrange(300)])
    if k == 3:
        return rnd.choice([True, False])
    if k == 4:
        return rnd.randrange(-30, 30)
    if k == 5:
        return rnd.randrange(1 << 16)
    if k == 6:
        return [random_cbor(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    if k == 7:
        return {random_key(rnd) if rnd.random() < 0.3 else rnd.randrange(-4, 12):
                random_cbor(rnd, depth + 1) for _ in range(rnd.randrange(6))}
    return {rnd.choice(["id", "type", "alg", "name", "hmac-secret", "up", "rk"]): random_cbor(rnd, depth + 1)
            for _ in range(rnd.randrange(4))}


# Raw CBOR heads that the encoder above never writes: indefinite lengths, tags,
# floats, undefined, break codes, huge lengths, deep nesting.
ODD = [b"\x5f\x41a\xff", b"\x7f\x61a\xff", b"\x9f\x01\xff", b"\xbf\x01\x02\xff", b"\xc0\x61a",
       b"\xf9\x3c\x00", b"\xfa\x00\x00\x00\x00", b"\xf7", b"\xf6", b"\xff", b"\x5b" + b"\xff" * 8,
       b"\x9b" + b"\xff" * 8, b"\xbb" + b"\x7f" * 8, b"\x81" * 200 + b"\x00", b"\xa1\x01" * 150 + b"\x00",
       b"\x1c", b"\x3f", b"\xd8\x18\x41\x00"]


def mutate(rnd, req):
    b = bytearray(req)
    for _ in range(rnd.randrange(1, 4)):
        m = rnd.randrange(9)
        if m == 0 and len(b) > 1:  # bit flips
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        elif m == 1 and len(b) > 1:  # truncation
            del b[rnd.randrange(1, len(b)):]
        elif m == 2:  # random bytes inserted
            i = rnd.randrange(1, len(b) + 1)
            b[i:i] = rbytes(rnd.randrange(1, 8))
        elif m == 3 and len(b) > 2:  # a byte deleted
            del b[rnd.randrange(1, len(b))]
        elif m == 4:  # an odd CBOR item spliced in
            i = rnd.randrange(1, len(b) + 1)
            b[i:i] = rnd.choice(ODD)
        elif m == 5 and len(b) > 1:  # interesting byte values
            b[rnd.randrange(1, len(b))] = rnd.choice([0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x40, 0x5f,
                                                       0x60, 0x80, 0x9f, 0xa0, 0xbf, 0xf4, 0xf5, 0xff])
        elif m == 6:  # a whole random parameter map
            b = bytearray(b[:1]) + cbor.encode({rnd.randrange(1, 12): random_cbor(rnd)
                                               for _ in range(rnd.randrange(6))})
        elif m == 7:  # one parameter replaced by something random
            try:
                params = cbor.decode(bytes(b[1:]))
                if isinstance(params, dict) and params:
                    key = rnd.choice(list(params))
                    params[key] = random_cbor(rnd)
                    b = bytearray(b[:1]) + cbor.encode(params)
            except Exception:
                pass
        else:  # another command byte
            b[0] = rnd.choice([0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x40, 0x41,
                               rnd.randrange(256)])
    if b and b[0] == 0x07 and rnd.random() < 0.9:
        b[0] = 0x02  # a reset now and then only: it would wipe the corpus' credential
    return bytes(b[:7609])


def health(args):
    """A fresh, well-behaved client must still get through. Another channel's
    half-sent message may hold the device for up to its 0.5 s timeout, as on a
    real key, so CHANNEL_BUSY earns a second try."""
    for attempt in range(3):
        try:
            dev = open_device(args.socket)
            try:
                msg = os.urandom(300)
                assert dev.ping(msg) == msg, "PING echo differs"
                info = Ctap2(dev).get_info()
                assert "FIDO_2_1" in info.versions
                return
            finally:
                dev.close()
        except CtapError as e:
            if e.code != CtapError.ERR.CHANNEL_BUSY or attempt == 2:
                raise
            time.sleep(0.6)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--check-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print("# seed %d (rerun with --seed %d)" % (seed, seed), flush=True)
    RND.seed(seed)
    rnd = RND

    corpus = valid_requests(args)
    conn = Conn(args.socket)
    cid = conn.init()
    frames = checks = 0
    kinds = [0] * 10
    t0 = time.time()
    while frames < args.frames:
        k = rnd.randrange(10)
        kinds[k] += 1
        try:
            if k <= 2:  # a mutated or random CTAP2 request, properly framed, and its answer awaited
                req = mutate(rnd, rnd.choice(corpus)) if k < 2 else bytes([rnd.choice([1, 2, 6])]) + \
                    cbor.encode(random_cbor(rnd))
                conn.message(cid, 0x10, req)
                frames += 1 + max(0, (len(req) - 57 + 58) // 59)
                r = conn.wait_reply(cid)
                if r is None:
                    raise AssertionError("no answer on channel %08x to the CBOR request %s" % (cid, req.hex()))
                if os.environ.get("FUZZ_DEBUG") and r[4] == 0x90 and r[7] == 0x7F:
                    print("# ERR_OTHER for %s" % req.hex(), flush=True)
            elif k == 3:  # a fully random report
                conn.send(rbytes(REPORT_LEN))
                frames += 1
            elif k == 4:  # a random report on a real channel
                c = rnd.choice(conn.cids + [BROADCAST, 0])
                conn.send(struct.pack(">I", c) + rbytes(REPORT_LEN - 4))
                frames += 1
            elif k == 5:  # a half message, a stray continuation, or a wrong sequence
                conn.send((struct.pack(">IBH", cid, 0x80 | rnd.choice([0x01, 0x10, 0x06, 0x11, 0x3B, 0x3F]),
                                       rnd.randrange(58, 8000)) + rbytes(57)))
                conn.send(struct.pack(">IB", cid, rnd.randrange(256)) + rbytes(59))
                frames += 2
                conn.message(cid, 0x06, os.urandom(8))  # INIT on the channel resynchronises it
                frames += 1
            elif k == 6:  # reports of the wrong size
                conn.send(rbytes(rnd.choice([1, 4, 5, 7, 63, 65, 128])))
                frames += 1
            elif k == 7:  # valid commands with odd lengths: PING up to the maximum, WINK, CANCEL, LOCK, MSG
                cmd = rnd.choice([0x01, 0x08, 0x11, 0x04, 0x03, 0x06, 0x3B])
                conn.message(cid, cmd, rbytes(rnd.choice([0, 1, 8, 57, 58, 1000, 7609])))
                frames += 1
            elif k == 8:  # more channels, and INIT storms
                if len(conn.cids) < 40:
                    conn.init()
                else:
                    conn.message(rnd.choice(conn.cids), 0x06, os.urandom(8))
                frames += 1
            else:  # the user does things
                r = rnd.random()
                if r < 0.05:
                    control(args.control, "up deny")
                elif r < 0.1:
                    control(args.control, "power-cycle")
                elif r < 0.12:
                    conn.close()  # a client that goes away mid-conversation
                    conn = Conn(args.socket)
                    cid = conn.init()
                else:
                    control(args.control, "up approve")
            conn.drain()
        except (BrokenPipeError, ConnectionError) as e:
            print("# connection dropped (%r), reconnecting" % e, flush=True)
            conn = Conn(args.socket)
            cid = conn.init()
        if kinds[0] % 50 == 49:  # INIT storms may have evicted our channel: take a fresh one
            cid = conn.init()
        if frames // args.check_every > checks:
            checks = frames // args.check_every
            control(args.control, "up approve")
            # A half-sent message keeps the device busy (as a real one would, until
            # it times out): resynchronise our channels first.
            for c in conn.cids:
                conn.message(c, 0x06, os.urandom(8))
            conn.drain(wait=0.05)
            health(args)
    conn.close()
    control(args.control, "up approve")
    health(args)
    print("# %d frames, %d health checks, kinds %s, %.1f s" % (frames, checks + 1, kinds, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
