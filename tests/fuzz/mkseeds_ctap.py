#!/usr/bin/python3
# mkseeds_ctap.py — writes the seed corpus of fuzz_ctap (CTAP2 requests and CTAPHID reports) into DIR/ctap/.
#
#   tests/fuzz/mkseeds_ctap.py tests/fuzz/corpus
#
# The input layout is described at the top of tests/fuzz/fuzz_ctap.c. A tiny
# canonical CBOR encoder is inlined so the seeds need nothing but Python.
import os
import struct
import sys


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError(n)


def enc(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        # CTAP2 canonical order: shorter encoded key first, then bytewise.
        items = sorted(((enc(k), enc(x)) for k, x in v.items()), key=lambda kv: (len(kv[0]), kv[0]))
        return head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(type(v))


def cbor_seq(*reqs):
    """Mode byte 1 (odd: CBOR requests), each request behind a 2-byte length."""
    return b"\x01" + b"".join(struct.pack(">H", len(r)) + r for r in reqs)


CDH = bytes(range(32))
RP = "fuzz.example.org"
MAKE_CRED = b"\x01" + enc({
    1: CDH,
    2: {"id": RP, "name": "Fuzz RP"},
    3: {"id": b"user-0001", "name": "fuzz", "displayName": "Fuzz User"},
    4: [{"alg": -7, "type": "public-key"}],
})
GET_ASSERTION = b"\x02" + enc({
    1: RP,
    2: CDH,
    # 62 bytes of 0xCC: the harness puts the id of the last credential made here.
    3: [{"id": b"\xcc" * 62, "type": "public-key"}],
})
GET_INFO = b"\x04"
GET_RETRIES = b"\x06" + enc({1: 2, 2: 1})
GET_KEY_AGREEMENT = b"\x06" + enc({1: 2, 2: 2})
GET_KEY_AGREEMENT_V1 = b"\x06" + enc({1: 1, 2: 2})


def report(cid, cmd, payload, seq=None):
    """One 64-byte CTAPHID report: an init packet (seq None) or a continuation."""
    if seq is None:
        p = struct.pack(">IBH", cid, 0x80 | cmd, len(payload)) + payload[:57]
    else:
        p = struct.pack(">IB", cid, seq) + payload
    return p.ljust(64, b"\0")


def hid_msg(cid, cmd, payload):
    out = report(cid, cmd, payload)
    rest, seq = payload[57:], 0
    while rest:
        out += report(cid, None, rest[:59], seq)
        rest, seq = rest[59:], seq + 1
    return out


def main():
    d = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus", "ctap")
    os.makedirs(d, exist_ok=True)
    seeds = {
        "ok-getinfo": cbor_seq(GET_INFO),
        "ok-clientpin": cbor_seq(GET_RETRIES, GET_KEY_AGREEMENT, GET_KEY_AGREEMENT_V1),
        "ok-makecred-getassertion": cbor_seq(MAKE_CRED, GET_ASSERTION),
        "bad-getassertion-unknown-cred": cbor_seq(GET_ASSERTION),
        "bad-makecred-no-alg": cbor_seq(b"\x01" + enc({1: CDH, 2: {"id": RP}, 3: {"id": b"u"}, 4: []})),
        "bad-truncated-cbor": cbor_seq(MAKE_CRED[:40]),
        # Raw CTAPHID (mode byte 0): 00000001 is the harness's channel.
        "hid-ping-wink": b"\x00" + hid_msg(1, 0x01, bytes(range(100))) + hid_msg(1, 0x08, b""),
        "hid-cbor-makecred": b"\x00" + hid_msg(1, 0x10, MAKE_CRED),
        "hid-init-broadcast": b"\x00" + hid_msg(0xFFFFFFFF, 0x06, b"12345678") + hid_msg(1, 0x11, b""),
        "hid-bad-seq": b"\x00" + report(1, 0x10, b"\x04" * 120) + report(1, None, b"x" * 59, 5),
    }
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
