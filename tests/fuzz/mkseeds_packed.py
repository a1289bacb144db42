#!/usr/bin/env python3
# mkseeds_packed.py — seeds for fuzz_packed: packed batches (u32 little-endian length, bytes) of the blob/ok-* blobs.
#
#   tests/fuzz/mkseeds_packed.py [CORPUS_DIR]     (default: tests/fuzz/corpus)
# ok-* hold real blobs (sealed with the fixed key of tests/fuzz/fuzz.h), so they pass
# TS_FUZZ_EXPECT_VALID=1; bad-* are the malformed shapes the reader names.
import os, struct, sys

corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
blob_dir = os.path.join(corpus, "blob")
blobs = [open(os.path.join(blob_dir, f), "rb").read() for f in sorted(os.listdir(blob_dir)) if f.startswith("ok-")]
out = os.path.join(corpus, "packed")
os.makedirs(out, exist_ok=True)

def pack(items):
    return b"".join(struct.pack("<I", len(i)) + i for i in items)

seeds = {
    "ok-one": pack(blobs[:1]),
    "ok-all": pack(blobs),
    "ok-repeated": pack(blobs * 4),
    "bad-empty": b"",
    "bad-short-length": pack(blobs[:1]) + b"\x05\x00",
    "bad-past-end": pack(blobs)[:-1],
    "bad-trailing": pack(blobs) + b"\x00\x00\x00",
    "bad-oversized": pack(blobs[:1]) + struct.pack("<I", 65536 + 70 + 1) + b"\x00" * 16,
    "bad-length-ffffffff": pack(blobs[:1]) + b"\xff\xff\xff\xff" + blobs[0],
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
