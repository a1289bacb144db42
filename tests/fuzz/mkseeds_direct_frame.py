#!/usr/bin/python3
# mkseeds_direct_frame.py — writes the seed corpus of fuzz_direct_frame (a private-socket client's byte
# stream) into DIR/direct_frame/: the first byte of each seed chooses how the harness cuts the stream
# into reads, the rest is the handshake and the messages, marshalled here by hand.
#
#   tests/fuzz/mkseeds_direct_frame.py tests/fuzz/corpus
import os
import struct
import sys


def pad(b, n):
    return b + b"\0" * (-len(b) % n)


def field(code, sig, value, end="<"):
    out = struct.pack("<BB", code, len(sig)) + sig.encode() + b"\0"
    if sig in ("o", "s"):
        out = pad(out, 4) + struct.pack(end + "I", len(value)) + value.encode() + b"\0"
    elif sig == "g":
        out += struct.pack("<B", len(value)) + value.encode() + b"\0"
    elif sig == "u":
        out = pad(out, 4) + struct.pack(end + "I", value)
    return out


def message(sig, body, serial, member="Unwrap", iface="org.tokenseal1.Vault", path="/org/tokenseal1/vault/v",
            fds=0, extra=(), end="<"):
    fields = [field(1, "o", path, end), field(2, "s", iface, end), field(3, "s", member, end)]
    if sig:
        fields.append(field(8, "g", sig, end))
    if fds:
        fields.append(field(9, "u", fds, end))
    fields += list(extra)
    fb = b""
    for f in fields:
        fb = pad(fb, 8) + f
    head = struct.pack(end + "cBBBII", b"l" if end == "<" else b"B", 1, 0, 1, len(body), serial)
    return pad(head + struct.pack(end + "I", len(fb)) + fb, 8) + body


AUTH = b"\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n"
UNWRAP = struct.pack("<I", 5) + b"hello" + b"\0\0\0" + struct.pack("<I", 0)
UNLOCK = struct.pack("<I", 2) + b"p1\0\0" + struct.pack("<I", 0) + struct.pack("<I", 0)
PING = dict(member="Ping", iface="org.freedesktop.DBus.Peer", path="/")
SEEDS = {
    "ok-unwrap": bytes([7]) + AUTH + message("aya{ss}", UNWRAP, 1),
    "ok-two-calls": bytes([1]) + AUTH + message("aya{ss}", UNWRAP, 1) + message("sha{ss}", UNLOCK, 2, "Unlock", fds=1),
    "ok-big-endian-ping": bytes([3]) + b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n" + message("", b"", 9, end=">", **PING),
    "bad-unknown-field": bytes([5]) + AUTH + message("", b"", 1, extra=[field(10, "s", "x")], **PING),
    "bad-sender": bytes([2]) + AUTH + message("", b"", 1, extra=[field(7, "s", ":1.1")], **PING),
    "bad-no-nul": bytes([9]) + AUTH[1:] + message("", b"", 1, **PING),
}

d = os.path.join(sys.argv[1], "direct_frame")
os.makedirs(d, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
