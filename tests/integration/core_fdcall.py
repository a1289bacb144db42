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
#   h     "<FILE" (fd open for reading), ">FILE" (fd open for writing), "hang" (read end of a
#         pipe whose write end this process keeps open), "closed" (read end of a pipe whose
#         reader will be gone: write end for a daemon write... i.e. a pipe with no reader)
# Prints each reply value on its own line (ay as hex, aay as hex items with ",", a(so) as
# "name path" lines). A D-Bus error prints "ERRORNAME: message" on stderr and exits 1.
import os
import sys

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
        if a.startswith("<"):
            fd = os.open(a[1:], os.O_RDONLY)
        elif a.startswith(">"):
            fd = os.open(a[1:], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
        sys.exit(1)
    if reply is None:
        return
    if not isinstance(reply, tuple):
        reply = (reply,)
    for v in reply:
        print(show(v))


main()
