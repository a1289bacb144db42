#!/usr/bin/python3
# security_direct_raw.py — a hostile client of the private socket, written by hand (no D-Bus library
# that would refuse to build what it sends): the SASL handshake, then one method call with a body
# of a given size and a given number of file descriptors. Used by security-direct.sh.
#
#   security_direct_raw.py SOCKET BODY_BYTES N_FDS [N_STRINGS [MODE]]
#
# The call is org.freedesktop.DBus.Peer.Ping on / with signature "ay" ["as"] + "h" * N_FDS: an 'ay'
# of BODY_BYTES bytes, an 'as' of N_STRINGS empty strings when given, then N_FDS fds (pipes) sent
# with the message. Ping takes no arguments; sd-bus answers it anyway. Prints "reply",
# "error NAME" or "closed". MODE changes the call:
#   variant  the signature is "av" (one variant holding a byte);
#   noreply  org.tokenseal1.Vault.Unwrap, flagged NO_REPLY_EXPECTED, and a plain Ping follows it on the
#            same connection: what is printed is the Ping's fate (a client cut off for the first gets "closed");
#   data     org.tokenseal1.Vault.Unwrap on /org/tokenseal1 (a data method, which may be large; there is
#            no vault there, so the answer is an error): prints "answered" for any answer;
#   padded   the Ping's arguments are followed by BODY_BYTES bytes that no argument reads;
#   field    the Ping's header carries a field sd-bus does not know (code 10) of BODY_BYTES bytes;
#   pieces   a data-method call of BODY_BYTES bytes sent unfinished: its header, then one byte at a
#            time with one fd each, N_FDS times; prints "closed" when the daemon hangs up, "held" when
#            it still holds the connection (and the fds) a second later;
#   fdcall   AddProtector on a vault that is not there, with its own signature and N_FDS fds:
#            prints "answered" for any answer;
#   nomember a call without a member (which sd-bus cannot parse and drops), with N_FDS fds, sent
#            BODY_BYTES times (at least once): prints "closed" or "held";
#   begin    "BEGIN" before any AUTH (sd-bus answers ERROR and stays in the handshake), then a Ping
#            with an unknown header field: prints the Ping's fate;
#   short    a 16-byte call (sd-bus would read 8 bytes of the next, with their fds) and then
#            AddProtector (fdcall's) with N_FDS fds, in one write: prints "closed" or "held";
#   badpad   fdcall's AddProtector with a padding byte that is not zero, and N_FDS fds;
#   bigstall the header of a BODY_BYTES Unwrap and 1 MiB of it, then nothing: prints "closed" with the
#            seconds from the header to the daemon's hang-up (at most 20), or "held";
#   bighangup  N_FDS connections in turn each send the header of a BODY_BYTES Unwrap and one byte of its
#            body, and hang up: prints "done";
#   bighold  N_FDS connections each send the header of a BODY_BYTES Unwrap and 1 MiB of it, and
#            hold: prints each one's fate a second later ("held" or "closed"), in order (and keeps
#            them RAW_HOLD seconds more);
#   answers  (then VAULT_PATH BLOB_FILE) N_FDS connections in turn each send a whole RewrapBatch of the
#            blob BODY_BYTES times to VAULT_PATH and wait until its answer begins to come, reading none
#            of it: prints each one's fate ("answered" for a method return, "error NAME", "closed" or
#            "held"), in order, then "queued:N", the most bytes of an answer waiting in one connection's
#            socket unread;
#   answerstall  as answers, then waits (reading nothing; RAW_READ=N bytes once) for the daemon to hang up on the last
#            connection: "hung up after N s" (from when its answer began to come) or "held for 20 s",
#            before "queued:N";
#   orphan   (then VAULT_PATH) the connecting process exits, a zombie, and its child calls Lock on
#            VAULT_PATH on the connection: prints the answer ("reply", "error NAME" or "closed");
#            With RAW_WAIT=S each waits S seconds for its answer (5), with RAW_HOLD=S all are kept S
#            seconds after the printing, and with RAW_GDK=N:PATH each sends N GenerateDataKey calls of
#            64 KiB on PATH first, in the same write (their answers come first: what "answered" sees);
#   loadflood  (then VAULT_PATH BLOB_FILE) N_FDS connections keep the daemon busy with UnwrapBatches of
#            BODY_BYTES blobs while connects are flooded in, RAW_SECONDS: "ready", then the counts;
#   paced    a BODY_BYTES Unwrap sent at a steady RAW_RATE bytes a second: "ready" once begun, then its
#            fate ("answered", "closed" or "held");
#   late     (then VAULT_PATH BLOB_FILE) two connections whose deadlines pass while the daemon is
#            behind (stopped by the caller after "ready"): one sending a large call, one reading a
#            large answer; prints each one's fate ("answered" or "closed");
#   smallstall  (then VAULT_PATH) BODY_BYTES GenerateDataKey calls of 64 KiB sent at once, and no answer
#            read: "hung up after N s" (from the send) or "held for 20 s", then "queued:N".
import fcntl
import os
import select
import socket
import struct
import sys
import termios
import threading
import time


def pad(b, n):
    return b + b"\0" * (-len(b) % n)


def field(code, sig, value):
    # A header field (yv), at an 8-byte boundary: code, variant signature, value.
    out = struct.pack("<B", code) + struct.pack("<B", len(sig)) + sig.encode() + b"\0"
    if sig in ("o", "s"):
        out = pad(out, 4) + struct.pack("<I", len(value)) + value.encode() + b"\0"
    elif sig == "g":
        out += struct.pack("<B", len(value)) + value.encode() + b"\0"
    elif sig == "u":
        out = pad(out, 4) + struct.pack("<I", value)
    return out


def call(body_len, n_fds, n_str, mode="", serial=1):
    if mode == "variant":
        sig, body = "av", struct.pack("<I", 4) + b"\x01y\x00\x00"
        return message(sig, body, 0, "/", "org.freedesktop.DBus.Peer", "Ping", 0, serial)
    if mode == "padded":
        return message("", b"\0" * body_len, 0, "/", "org.freedesktop.DBus.Peer", "Ping", 0, serial)
    if mode == "field":
        return message("", b"", 0, "/", "org.freedesktop.DBus.Peer", "Ping", 0, serial,
                       [field(10, "s", "x" * body_len)])
    sig = "ay" + ("as" if n_str else "") + "h" * n_fds
    body = pad(struct.pack("<I", body_len) + b"\0" * body_len, 4)
    if n_str:
        # Each empty string: length 0 and its NUL, the next one at a 4-byte boundary.
        body += struct.pack("<I", 8 * (n_str - 1) + 5) + b"\0\0\0\0\0\0\0\0" * (n_str - 1) + b"\0\0\0\0\0"
        body = pad(body, 4)
    body += b"".join(struct.pack("<I", i) for i in range(n_fds))
    if mode == "noreply":
        # NO_REPLY_EXPECTED (flag 1): a call the daemon would drop unanswered, unless the bounds come first.
        return message(sig, body, n_fds, "/org/tokenseal1", "org.tokenseal1.Vault", "Unwrap", 1, serial)
    if mode in ("data", "pieces", "bighold"):
        return message(sig, body, n_fds, "/org/tokenseal1", "org.tokenseal1.Vault", "Unwrap", 0, serial)
    if mode == "fdcall":
        body = (struct.pack("<I", 8) + b"recovery\0" + b"\0\0\0" + struct.pack("<I", 0) + b"\0\0\0\0" +
                b"".join(struct.pack("<I", i) for i in range(n_fds)))
        return message("sa{ss}" + "h" * n_fds, body, n_fds, "/org/tokenseal1/vault/nosuch", "org.tokenseal1.Vault",
                       "AddProtector", 0, serial)
    if mode == "nomember":
        return message("h" * n_fds, body[-4 * n_fds:] if n_fds else b"", n_fds, "/org/tokenseal1",
                       "org.tokenseal1.Vault", "", 0, serial)
    return message(sig, body, n_fds, "/", "org.freedesktop.DBus.Peer", "Ping", 0, serial)


def message(sig, body, n_fds, path, iface, member, flags, serial, extra=()):
    fields = [field(1, "o", path), field(2, "s", iface)] + ([field(3, "s", member)] if member else [])
    if sig:
        fields.append(field(8, "g", sig))
    if n_fds:
        fields.append(field(9, "u", n_fds))
    fields += extra
    fbytes = b""
    for f in fields:
        fbytes = pad(fbytes, 8) + f
    head = struct.pack("<cBBBII", b"l", 1, flags, 1, len(body), serial) + struct.pack("<I", len(fbytes)) + fbytes
    return pad(head, 8) + body


def rewrap_batch(vault, blob, count, serial=1):
    # RewrapBatch(aay blobs, a{ss} context): COUNT copies of BLOB, an empty context.
    one = struct.pack("<I", len(blob)) + blob
    items = b"".join([one] + [b"\0" * (-len(one) % 4) + one] * (count - 1)) if count else b""
    body = pad(struct.pack("<I", len(items)) + items, 4) + struct.pack("<I", 0)
    return message("aaya{ss}", pad(body, 8), 0, vault, "org.tokenseal1.Vault", "RewrapBatch", 0, serial)


def recv_whole(s, chunk):
    # One whole message (header, fields, body), read CHUNK bytes at a time; None when the peer hangs up.
    got = b""
    while len(got) < 16 or len(got) < 16 + struct.unpack("<I", got[12:16])[0] + \
            (-struct.unpack("<I", got[12:16])[0] % 8) + struct.unpack("<I", got[4:8])[0]:
        k = s.recv(chunk)
        if not k:
            return None
        got += k
    return got


def recv_reply(s):
    got = b""
    while len(got) < 16:
        b = s.recv(4096)
        if not b:
            return None
        got += b
    flen = struct.unpack("<I", got[12:16])[0]
    need = 16 + flen + (-flen % 8)
    while len(got) < need:
        b = s.recv(4096)
        if not b:
            return None
        got += b
    return got[:need]


def error_name(msg):
    # Field 4 (ERROR_NAME, 's') among the header fields.
    i, end = 16, len(msg)
    while i + 4 <= end:
        code, slen = msg[i], msg[i + 1]
        sig = msg[i + 2:i + 2 + slen].decode()
        j = i + 3 + slen
        if sig in ("s", "o"):
            j += -j % 4
            n = struct.unpack("<I", msg[j:j + 4])[0]
            if code == 4:
                return msg[j + 4:j + 4 + n].decode()
            j += 4 + n + 1
        elif sig == "g":
            j += 1 + msg[j] + 1
        else:
            j += -j % 4 + 4
        i = j + (-j % 8)
    return "?"


def fate(s, seconds):
    # What became of a connection that sent what it had to: "closed", "answered", or "held" after SECONDS.
    s.settimeout(seconds)
    try:
        return "closed" if s.recv(4096) == b"" else "answered"
    except socket.timeout:
        return "held"
    except (BrokenPipeError, ConnectionResetError):
        return "closed"


def handshake(s):
    # The whole handshake in one write, as sd-bus sends it: the daemon has read BEGIN by the time it
    # agrees to fds, so the message's fds cannot reach it inside the handshake (which it refuses).
    s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n")
    got = b""
    while b"AGREE_UNIX_FD\r\n" not in got:
        b = s.recv(4096)
        if not b or b"ERROR" in got + b or b"REJECTED" in got + b:
            raise SystemExit("handshake: %r" % (got + b))
        got += b


def main():
    path, body_len, n_fds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n_str = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    mode = sys.argv[5] if len(sys.argv) > 5 else ""
    if mode == "bigstall":
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        handshake(c)
        # Timed from before the header: the daemon's 10 s run from when it read it (a slow daemon,
        # e.g. under a sanitizer, may take a while to read the 1 MiB that follows).
        t0 = time.monotonic()
        c.sendall(call(body_len, 0, 0, "bighold")[:1 << 20])
        f = fate(c, 20)
        print(f if f != "closed" else "closed %d" % round(time.monotonic() - t0))
        return
    if mode == "bighangup":
        msg = call(body_len, 0, 0, "bighold")
        for i in range(n_fds):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            handshake(c)
            c.sendall(msg[:len(msg) - body_len + 1])
            time.sleep(0.05)
            c.close()
        print("done")
        return
    if mode == "bighold":
        conns = []
        for i in range(n_fds):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            handshake(c)
            try:
                c.sendall(call(body_len, 0, 0, mode)[:1 << 20])
            except (BrokenPipeError, ConnectionResetError):
                pass  # cut off already: the fate below says so
            conns.append(c)
            time.sleep(0.2)
        time.sleep(1)
        print(" ".join(fate(c, 0.05) for c in conns), flush=True)
        time.sleep(float(os.environ.get("RAW_HOLD", "0")))
        return
    if mode == "orphan":
        # The process that connects exits and stays a zombie (this one reaps it only at the end), leaving
        # the connection to its child, which calls Lock on VAULT_PATH: prints the answer ("reply",
        # "error NAME" or "closed").
        r, w = os.pipe()
        connector = os.fork()
        if connector == 0:
            os.close(r)
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            handshake(c)
            me = os.getpid()
            if os.fork() == 0:
                state = ""
                for _ in range(200):
                    with open("/proc/%d/stat" % me) as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    if state == "Z":
                        break
                    time.sleep(0.01)
                c.sendall(message("", b"", 0, sys.argv[6], "org.tokenseal1.Vault", "Lock", 0, 1))
                c.settimeout(10)
                reply = recv_reply(c)
                out = "closed" if reply is None else "reply" if reply[1] == 2 else "error " + error_name(reply)
                os.write(w, (out if state == "Z" else "the connector never became a zombie").encode())
                os._exit(0)
            os._exit(0)
        os.close(w)
        got = b""
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            got += b
        os.waitpid(connector, 0)
        print(got.decode())
        return
    if mode == "loadflood":
        # N_FDS connections each send an UnwrapBatch of BODY_BYTES copies of BLOB_FILE on VAULT_PATH,
        # again as soon as its answer came, while another thread connects 1,000 sockets at a time
        # without a handshake and closes them (the daemon refuses them: the uid holds its 16), for
        # RAW_SECONDS (6). Prints "ready" once the load runs, then "calls N connected C full F" (F:
        # connects the socket's full queue turned away).
        blob = open(sys.argv[7], "rb").read()
        one = struct.pack("<I", len(blob)) + blob
        items = b"".join([one] + [b"\0" * (-len(one) % 4) + one] * (body_len - 1))
        body = pad(struct.pack("<I", len(items)) + items, 4) + struct.pack("<I", 0)
        # Serials 1 and 2 in turn: the daemon refuses a serial equal to the one before.
        msgs = [message("aaya{ss}", pad(body, 8), 0, sys.argv[6], "org.tokenseal1.Vault", "UnwrapBatch", 0, k)
                for k in (1, 2)]
        stop = time.monotonic() + float(os.environ.get("RAW_SECONDS", "6"))
        counts = {"calls": 0, "connected": 0, "full": 0}

        def load(c):
            k = 0
            while time.monotonic() < stop:
                c.sendall(msgs[k % 2])
                if recv_whole(c, 1 << 20) is None:
                    return
                k += 1
                counts["calls"] += 1

        def flood():
            while time.monotonic() < stop:
                socks = []
                for _ in range(1000):
                    f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    f.setblocking(False)
                    try:
                        f.connect(path)
                        counts["connected"] += 1
                    except BlockingIOError:
                        counts["full"] += 1
                    socks.append(f)
                for f in socks:
                    f.close()

        conns = []
        for i in range(n_fds):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            handshake(c)
            conns.append(c)
        ts = [threading.Thread(target=load, args=(c,)) for c in conns]
        for t in ts:
            t.start()
        time.sleep(0.5)
        ts.append(threading.Thread(target=flood))
        ts[-1].start()
        print("ready", flush=True)
        for t in ts:
            t.join()
        print("calls %d connected %d full %d" % (counts["calls"], counts["connected"], counts["full"]))
        return
    if mode == "paced":
        # A BODY_BYTES Unwrap sent at a steady RAW_RATE bytes a second (4,000,000), 64 KiB at a time,
        # as a slow but honest client would; prints "ready" once begun, then its fate ("answered",
        # "closed" or "held" 30 s after the last byte).
        msg = call(body_len, 0, 0, "data")
        rate = float(os.environ.get("RAW_RATE", "4000000"))
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        handshake(c)
        try:
            for off in range(0, len(msg), 1 << 16):
                c.sendall(msg[off:off + (1 << 16)])
                if off == 0:
                    print("ready", flush=True)
                # Never faster: time lost while the daemon did not read is not made up.
                time.sleep((1 << 16) / rate)
        except (BrokenPipeError, ConnectionResetError):
            print("closed")
            return
        print(fate(c, 30))
        return
    if mode == "late":
        # The daemon falls behind (the test stops it once "ready" is printed): A has sent the header and
        # 1 MiB of a BODY_BYTES-blob RewrapBatch and sends the rest meanwhile; B's answer to a 71-blob
        # one began to come, and B reads all of it meanwhile. Prints each one's fate: "answered" (A: an
        # answer came; B: all of it) or "closed".
        blob = open(sys.argv[7], "rb").read()
        a, b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for c in (a, b):
            c.connect(path)
            handshake(c)
        ma = rewrap_batch(sys.argv[6], blob, body_len)
        a.sendall(ma[:1 << 20])
        b.sendall(rewrap_batch(sys.argv[6], blob, 71))
        b.settimeout(5)
        b.recv(1, socket.MSG_PEEK)
        time.sleep(0.5)
        print("ready", flush=True)
        time.sleep(0.5)
        fates = {}

        def send_rest():
            try:
                a.sendall(ma[1 << 20:])
                a.settimeout(40)
                fates["a"] = "closed" if recv_reply(a) is None else "answered"
            except (OSError, socket.timeout):
                fates["a"] = "closed"

        def read_all():
            try:
                b.settimeout(40)
                fates["b"] = "closed" if recv_whole(b, 1 << 16) is None else "answered"
            except (OSError, socket.timeout):
                fates["b"] = "closed"

        ts = [threading.Thread(target=send_rest), threading.Thread(target=read_all)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(fates["a"], fates["b"])
        return
    if mode == "smallstall":
        # BODY_BYTES GenerateDataKey calls of 64 KiB in one write (each answer about 128 KiB), none read.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        handshake(c)
        c.sendall(b"".join(message("ua{ss}", struct.pack("<II", 65536, 0), 0, sys.argv[6], "org.tokenseal1.Vault",
                                   "GenerateDataKey", 0, i + 1) for i in range(body_len)))
        t0 = time.monotonic()
        p = select.poll()
        p.register(c, select.POLLRDHUP)
        while time.monotonic() - t0 < 20 and not p.poll(100):
            pass
        secs = time.monotonic() - t0
        queued = struct.unpack("i", fcntl.ioctl(c, termios.FIONREAD, b"\0\0\0\0"))[0]
        print("hung up after %d s" % round(secs) if secs < 20 else "held for 20 s", "queued:%d" % queued)
        return
    if mode in ("answers", "answerstall"):
        # Each connection in turn: the whole call, then wait until its answer begins to come (or the
        # daemon hangs up), reading none of it. An error answer is read (it is small): its name counts.
        msg = rewrap_batch(sys.argv[6], open(sys.argv[7], "rb").read(), body_len, serial=100)
        # RAW_GDK=N:PATH: N GenerateDataKey calls of 64 KiB on PATH go first, in the same write.
        gdk = os.environ.get("RAW_GDK", "")
        if gdk:
            n_gdk, gdk_path = gdk.split(":", 1)
            msg = b"".join(message("ua{ss}", struct.pack("<II", 65536, 0), 0, gdk_path, "org.tokenseal1.Vault",
                                   "GenerateDataKey", 0, i + 1) for i in range(int(n_gdk))) + msg
        conns, out = [], []
        for i in range(n_fds):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            handshake(c)
            try:
                c.sendall(msg)
                c.settimeout(float(os.environ.get("RAW_WAIT", "5")))
                head = c.recv(16, socket.MSG_PEEK)
                f = "closed" if head == b"" else "answered" if head[1] == 2 else None
                if f is None:
                    reply = recv_reply(c)
                    f = "closed" if reply is None else "error " + error_name(reply)
            except socket.timeout:
                f = "held"
            except (BrokenPipeError, ConnectionResetError):
                f = "closed"
            conns.append(c)
            out.append(f)
        t0 = time.monotonic()
        # What the daemon could put in the kernel for a client that reads nothing (its send buffer).
        queued = max(struct.unpack("i", fcntl.ioctl(c, termios.FIONREAD, b"\0\0\0\0"))[0] for c in conns)
        if mode == "answerstall" and os.environ.get("RAW_READ"):
            # RAW_READ=N: read N bytes of the answer once (a reader now and then), then nothing more.
            want, c = int(os.environ["RAW_READ"]), conns[-1]
            c.settimeout(5)
            while want > 0:
                k = c.recv(min(want, 1 << 16))
                if not k:
                    break
                want -= len(k)
        if mode == "answerstall":
            # Then wait, reading nothing (more), for the daemon to hang up (it sees the end without our reading).
            p = select.poll()
            p.register(conns[-1], select.POLLRDHUP)
            while time.monotonic() - t0 < 20 and not p.poll(100):
                pass
            secs = time.monotonic() - t0
            out.append("hung up after %d s" % round(secs) if secs < 20 else "held for 20 s")
        print(" ".join(out) + " queued:%d" % queued, flush=True)
        # RAW_HOLD=S: keep the connections (and what waits on them) S seconds more.
        time.sleep(float(os.environ.get("RAW_HOLD", "0")))
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    if mode == "begin":
        try:
            s.sendall(b"\0BEGIN\r\n" + message("", b"", 0, "/", "org.freedesktop.DBus.Peer", "Ping", 0, 1,
                                                  [field(10, "s", "x")]))
            print("closed" if recv_reply(s) is None else "reply")
        except (BrokenPipeError, ConnectionResetError):
            print("closed")
        return
    handshake(s)
    if mode == "pieces":
        # One fd per byte, as a message still being read: each piece is a new skb with its own fd.
        msg = call(body_len, 0, 0, mode)
        head = 16 + struct.unpack("<I", msg[12:16])[0]
        head += -head % 8
        try:
            s.sendall(msg[:head])
            for i in range(n_fds):
                r, w = os.pipe()
                os.close(w)
                s.sendmsg([msg[head + i:head + i + 1]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<i", r))])
                os.close(r)
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(fate(s, 1))
        return
    if mode in ("short", "badpad"):
        msg = call(0, n_fds, 0, "fdcall", serial=2)
        if mode == "short":
            msg = struct.pack("<cBBBIII", b"l", 1, 0, 1, 0, 1, 0) + msg
        else:
            # The path field takes 40 bytes from 16 ("/org/tokenseal1/vault/nosuch"), the interface's
            # 29 from 56: 3 bytes of padding after it.
            msg = msg[:56 + 29] + b"\1" + msg[56 + 30:]
        fds = [os.pipe()[0] for _ in range(n_fds)]
        try:
            s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<%di" % n_fds, *fds))])
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(fate(s, 1))
        return
    if mode == "nomember":
        try:
            for i in range(max(body_len, 1)):
                fds = [os.pipe()[0] for _ in range(n_fds)]
                s.sendmsg([call(0, n_fds, 0, mode, serial=i + 1)],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<%di" % n_fds, *fds))] if fds else [])
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(fate(s, 2))
        return
    msg = call(body_len, n_fds, n_str, mode)
    fds = []
    for _ in range(n_fds):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    try:
        # The fds go with the first bytes; the rest of a large body follows.
        first = msg[:4096]
        s.sendmsg([first], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<%di" % n_fds, *fds))] if fds else [])
        s.sendall(msg[4096:])
        if mode == "noreply":
            s.sendall(call(0, 0, 0, "", 2))
        reply = recv_reply(s)
    except (BrokenPipeError, ConnectionResetError):
        reply = None
    if reply is None:
        print("closed")
    elif mode in ("data", "fdcall"):
        print("answered")
    elif reply[1] == 3:
        print("error " + error_name(reply))
    else:
        print("reply")


main()
