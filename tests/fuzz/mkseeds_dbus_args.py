#!/usr/bin/python3
# mkseeds_dbus_args.py — writes the seed corpus of fuzz_dbus_args (method byte + argument stream) into DIR/dbus_args/.
#
#   tests/fuzz/mkseeds_dbus_args.py tests/fuzz/corpus
#
# The stream layout is described at the top of tests/fuzz/fuzz_dbus_args.c.
# Blob arguments reuse DIR/blob/ok-* (written by mkseeds.c with the real core).
import glob
import os
import struct
import sys

WRAP, UNWRAP, REWRAP, GENERATE, UNWRAP_BATCH, REWRAP_BATCH, ROTATE_KEY, \
    ADD_PROTECTOR, CREATE_VAULT, UNLOCK, GET_VAULT, SET_ESCROW, AGE_UNWRAP, UNWRAP_BATCH_PACKED, \
    REWRAP_BATCH_PACKED = range(15)


def s(v):
    b = v.encode()
    return bytes([len(b)]) + b


def ay(b):
    return struct.pack(">H", len(b)) + b


def packed(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def kv(pairs):
    return bytes([len(pairs)]) + b"".join(s(k) + s(v) for k, v in pairs)


CTX = [("app", "org.example.Mail"), ("purpose", "fuzz-seed")]
# Two X25519 escrow officers' public keys (test values; their secret halves are not kept).
ESCROW = ["tokenseal-escrow-pub:v1:bngcL8f1E-mBn3HevoDq7GvHwi1HiuPiblKxAuvZGWE",
          "tokenseal-escrow-pub:v1:mgd6aapjZsMxYoWP48SzzPehHDp8gIz5WtyLXFoohQk"]


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
    d = os.path.join(top, "dbus_args")
    os.makedirs(d, exist_ok=True)
    blobs = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(top, "blob", "ok-*")))]
    blob = blobs[0] if blobs else b"TSB1" + bytes(70)
    seeds = {
        "ok-wrap": bytes([WRAP]) + ay(b"k" * 32) + kv(CTX),
        "ok-unwrap": bytes([UNWRAP]) + ay(blob) + kv(CTX),
        "ok-rewrap": bytes([REWRAP]) + ay(blob) + kv(CTX[:1]),
        "ok-generate": bytes([GENERATE]) + struct.pack(">I", 32) + kv(CTX),
        "ok-unwrap-batch": bytes([UNWRAP_BATCH]) + struct.pack(">H", len(blobs) or 1) +
        b"".join(ay(b) for b in (blobs or [blob])) + kv(CTX),
        "ok-unwrap-batch-packed": bytes([UNWRAP_BATCH_PACKED]) + ay(packed(blobs or [blob])) + kv(CTX),
        "ok-rewrap-batch-packed": bytes([REWRAP_BATCH_PACKED]) + ay(packed(blobs or [blob])) + kv(CTX),
        "bad-unwrap-batch-packed-trailing": bytes([UNWRAP_BATCH_PACKED]) + ay(packed(blobs or [blob]) + b"\0") +
        kv(CTX),
        "ok-rotate-key": bytes([ROTATE_KEY]) + kv([("retire_below", "1")]),
        "ok-add-protector": bytes([ADD_PROTECTOR]) + s("fido2") + kv([("pin", "1"), ("description", "key")]),
        "ok-create-vault": bytes([CREATE_VAULT]) + s("home") + kv([("threshold", "1")]),
        "ok-get-vault": bytes([GET_VAULT]) + s("fuzz"),
        "ok-unlock": bytes([UNLOCK]) + s("p1") + kv([("source", "fuzz")]),
        "ok-set-escrow": bytes([SET_ESCROW]) + bytes([2]) + s("alice " + ESCROW[0]) + s("bob " + ESCROW[1]) +
        struct.pack(">I", 2),
        "bad-get-other-user": bytes([GET_VAULT]) + s("4242:fuzz"),
        "ok-age-unwrap": bytes([AGE_UNWRAP]) + struct.pack(">I", 1) + ay(bytes(range(32))) + ay(bytes(32)),
        "bad-age-unwrap-short": bytes([AGE_UNWRAP]) + struct.pack(">I", 1) + ay(bytes(31)),
        "bad-duplicate-key": bytes([WRAP]) + ay(b"x") + kv([("a", "1"), ("a", "2")]),
        "bad-empty-key": bytes([UNWRAP]) + ay(blob[:20]) + kv([("", "v")]),
        "bad-too-many-entries": bytes([ROTATE_KEY]) + kv([("k%d" % i, "v") for i in range(17)]),
        "bad-context-limit": bytes([WRAP]) + ay(b"") + kv([("k%d" % i, "v") for i in range(65)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
