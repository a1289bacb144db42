#!/usr/bin/python3
# core_fdcall.py — an independent D-Bus client (libdbus via dbus-python) for the calls busctl 252 cannot
# make: those with file-descriptor ('h') arguments. Used by tests/integration/core-*.sh.
#
#   core_fdcall.py ADDRESS OBJECT_PATH INTERFACE METHOD SIGNATURE ARG...
#
# One ARG per top-level signature element:
#   s/o   the text                 u/t  decimal
#   ay    hex ("" for empty)       aay  hex items separated by ","
#   a{ss} "k=v,k2=v2" ("" empty)
#   h     "<FILE" (read end of a pipe holding FILE's bytes), ">FILE" (write end of a pipe whose bytes
#         go to FILE after the call), "file<FILE" / "file>FILE" (FILE itself, open for reading /
#         writing: the daemon must refuse it), "hang" (read end of a
#         pipe whose write end this process keeps open), "full" (write end of a pipe that is full and never read), "closed" (read end of a pipe whose
#         reader will be gone: write end for a daemon write... i.e. a pipe with no reader)
# Prints each reply value on its own line (ay as hex, aay as hex items with ",", a(so) as
# "name path" lines). A D-Bus error prints "ERRORNAME: message" on stderr and exits 1.
import os
import sys
import threading

import dbus


def split_sig(sig):
    out, i = [], 0
    while i < len(sig):
        j, depth = i, 0
        while True:
            c = sig[j]
            if c in "({":
                depth += 1
            elif c in ")}":
                depth -= 1
            j += 1
            if depth == 0 and c != "a":
                break
        out.append(sig[i:j])
        i = j
    return out


keep = []
outputs = []


def convert(t, a):
    if t in ("s", "o"):
        return a
    if t in ("u", "t", "i"):
        return int(a)
    if t == "ay":
        return dbus.ByteArray(bytes.fromhex(a))
    if t == "aay":
        return dbus.Array([dbus.ByteArray(bytes.fromhex(x)) for x in a.split(",") if x != ""] if a else [],
                          signature="ay")
    if t == "a{ss}":
        d = {}
        for kv in a.split(",") if a else []:
            k, _, v = kv.partition("=")
            d[k] = v
        return dbus.Dictionary(d, signature="ss")
    if t == "h":
        if a.startswith("file<"):
            fd = os.open(a[5:], os.O_RDONLY)
        elif a.startswith("file>"):
            fd = os.open(a[5:], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        elif a.startswith("<"):
            # The daemon takes pipes and sockets only: the file's bytes go through a pipe.
            with open(a[1:], "rb") as f:
                data = f.read(1 << 20)   # /dev/zero too: 1 MiB is "too long" enough
            r, w = os.pipe()

            def feed(w=w, data=data):
                try:
                    os.write(w, data)
                except OSError:
                    pass
                os.close(w)
            if len(data) < 65536:
                feed()
            else:
                threading.Thread(target=feed, daemon=True).start()
            fd = r
        elif a.startswith(">"):
            r, w = os.pipe()
            outputs.append((r, a[1:]))
            fd = w
        elif a == "full":
            # The write end of a pipe already full, whose reader never reads.
            r, w = os.pipe()
            keep.append(r)
            os.set_blocking(w, False)
            try:
                while True:
                    os.write(w, b"x" * 65536)
            except BlockingIOError:
                pass
            os.set_blocking(w, True)
            fd = w
        elif a == "hang":
            r, w = os.pipe()
            keep.append(w)
            fd = r
        elif a == "closed":
            r, w = os.pipe()
            os.close(r)
            fd = w
        else:
            raise SystemExit("bad h argument: " + a)
        return dbus.types.UnixFd(fd)
    raise SystemExit("unsupported type " + t)


def show(v):
    if isinstance(v, (dbus.ByteArray, bytes)):
        return bytes(v).hex()
    if isinstance(v, dbus.Array):
        if v.signature == "y":
            return bytes(bytearray(int(x) for x in v)).hex()
        if v.signature == "ay":
            return ",".join(show(x) for x in v)
        return "\n".join(" ".join(str(y) for y in x) if isinstance(x, dbus.Struct) else show(x) for x in v)
    return str(v)


def save_outputs():
    # Our copies of the write ends went with the call; the daemon's are closed once it answered.
    for r, path in outputs:
        data = b""
        os.set_blocking(r, False)
        try:
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        os.close(fd)


def main():
    if len(sys.argv) < 6:
        raise SystemExit(__doc__)
    address, path, iface, method, sig = sys.argv[1:6]
    types = split_sig(sig)
    args = sys.argv[6:]
    if len(args) != len(types):
        raise SystemExit("expected %d arguments for %s" % (len(types), sig))
    conn = dbus.bus.BusConnection(address)
    try:
        reply = conn.call_blocking("org.tokenseal1", path, iface, method, sig,
                                   [convert(t, a) for t, a in zip(types, args)], timeout=60, byte_arrays=True)
    except dbus.exceptions.DBusException as e:
        sys.stderr.write("%s: %s\n" % (e.get_dbus_name(), e.get_dbus_message()))
        save_outputs()
        sys.exit(1)
    save_outputs()
    if reply is None:
        return
    if not isinstance(reply, tuple):
        reply = (reply,)
    for v in reply:
        print(show(v))


main()
