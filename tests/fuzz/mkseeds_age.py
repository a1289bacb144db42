#!/usr/bin/python3
# mkseeds_age.py — writes the seed corpus of fuzz_age_stanza (what age sends age-plugin-tokenseal on
# its stdin) into DIR/age_stanza/, from docs/FORMAT.md's age test vector.
#
#   tests/fuzz/mkseeds_age.py tests/fuzz/corpus
import base64
import os
import sys

RECIPIENT = "age1tokenseal1qxs2rg4r5jj6dfcqq99cwzuznxv6zvz0chzcsj29v0xja8qfgzlkl4qt4t256p4rdzvh6zx9lpp"
IDENTITY = "AGE-PLUGIN-TOKENSEAL-1QXS2RG4R5JJ6DFAG4X42HT9D46HSRMSFKD"
STANZA = ["tokenseal", "oKGio6Slpqc", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo"]
BODY = base64.b64decode("vTjkeyHaoAXD02FkJzozNDtgx/EKwe37Sg1i/Z/lEUw=")


def enc(t, args=(), body=b""):
    b = base64.b64encode(body).decode().rstrip("=")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    return ("-> " + " ".join([t, *args]) + "\n" + "\n".join(lines) + "\n").encode()


seeds = {
    "ok-identity-v1": enc("add-identity", [IDENTITY]) + enc("grease-1f", ["a"], bytes(70)) +
    enc("recipient-stanza", ["0", "X25519", "AAAA"], bytes(32)) + enc("recipient-stanza", ["0", *STANZA], BODY) +
    enc("done"),
    "ok-recipient-v1": enc("add-recipient", [RECIPIENT]) + enc("wrap-file-key", [], bytes(16)) +
    enc("extension-labels") + enc("done"),
    "ok-phase2-answers": enc("recipient-stanza", ["0", *STANZA], BODY) + enc("ok", [], b"123456") + enc("ok", ["yes"]) +
    enc("fail") + enc("unsupported"),
    "bad-stanza-args": enc("recipient-stanza", ["0", *STANZA[:3]], BODY),
    "bad-body-long-line": b"-> recipient-stanza 0 tokenseal a 1 b\n" + b"A" * 65 + b"\n",
    "bad-body-padding": b"-> wrap-file-key\nAAAAAAAAAAAAAAAAAAAAAA==\n",
    "bad-double-space": b"-> add-recipient  x\n\n",
    "bad-header-nul": b"-> add-identity ABC\x00 junk\n",
    "bad-recipient-case": enc("add-recipient", [RECIPIENT.upper()]),
    "bad-version-zero": enc("recipient-stanza", ["0", "tokenseal", STANZA[1], "0", STANZA[3]], BODY),
    "bad-body-48": enc("recipient-stanza", ["0", *STANZA], bytes(48)),
}
d = os.path.join(sys.argv[1], "age_stanza")
os.makedirs(d, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
