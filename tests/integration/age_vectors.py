#!/usr/bin/python3
"""age_vectors.py FORMAT.md — recompute docs/FORMAT.md's age test vector with other code than
tokenseal's (Python's hashlib BLAKE2b, the cryptography package's X25519 and ChaCha20-Poly1305,
and a Bech32 written here from BIP-173) and compare with every line of the vector."""
import base64, hashlib, re, struct, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32(hrp, data):
    def polymod(values):
        gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
        chk = 1
        for v in values:
            b = chk >> 25
            chk = (chk & 0x1ffffff) << 5 ^ v
            for i in range(5):
                chk ^= gen[i] if (b >> i) & 1 else 0
        return chk
    acc, bits, d5 = 0, 0, []
    for byte in data:
        acc, bits = acc << 8 | byte, bits + 8
        while bits >= 5:
            bits -= 5
            d5.append(acc >> bits & 31)
    if bits:
        d5.append(acc << (5 - bits) & 31)
    low = hrp.lower()
    exp = [ord(c) >> 5 for c in low] + [0] + [ord(c) & 31 for c in low]
    mod = polymod(exp + d5 + [0] * 6) ^ 1
    s = low + "1" + "".join(CHARSET[v] for v in d5 + [mod >> 5 * (5 - i) & 31 for i in range(6)])
    return s.upper() if hrp.isupper() else s


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(b):
    return base64.b64encode(b).decode().rstrip("=")


def main():
    text = open(sys.argv[1]).read()
    block = text[text.index("<!-- age-vector -->"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")].split("\n", 1)[1]
    v = {}
    for line in block.strip().splitlines():
        k, val = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        v[k] = val
    rk, vid, fk, eph = (bytes.fromhex(v[k]) for k in ("root key", "vault id", "file key", "ephemeral"))
    ver = int(v["key version"])
    sk = hashlib.blake2b(b"tokenseal-age-x25519-v1" + vid + struct.pack(">I", ver), key=rk, digest_size=32).digest()
    pk = raw(X25519PrivateKey.from_private_bytes(sk).public_key())
    share = raw(X25519PrivateKey.from_private_bytes(eph).public_key())
    S = X25519PrivateKey.from_private_bytes(eph).exchange(X25519PublicKey.from_public_bytes(pk))
    wk = hashlib.blake2b(b"tokenseal-age-wrap-v1" + vid[:8] + struct.pack(">I", ver) + share + pk, key=S,
                         digest_size=32).digest()
    body = ChaCha20Poly1305(wk).encrypt(bytes(12), fk, None)
    want = {
        "secret key": sk.hex(),
        "public key": pk.hex(),
        "recipient": bech32("age1tokenseal", bytes([1]) + vid[:8] + struct.pack(">H", ver) + pk),
        "identity": bech32("AGE-PLUGIN-TOKENSEAL-", bytes([1]) + vid),
        "stanza": "-> tokenseal %s %d %s" % (b64(vid[:8]), ver, b64(share)),
        "body": b64(body),
    }
    bad = [k for k in want if v.get(k) != want[k]]
    if bad:
        for k in bad:
            print("%s: FORMAT.md says %s, recomputed %s" % (k, v.get(k), want[k]))
        sys.exit(1)
    print("age vector: %d values recomputed independently" % len(want))


if __name__ == "__main__":
    main()
