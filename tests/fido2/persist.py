"""persist.py — softfido's state survives a restart: PIN, retries, credentials, signCount.

    persist.py before SOCKET FILE   set a PIN, spend one wrong try, make a credential, save what to expect
    persist.py after SOCKET FILE    check all of that against the restarted authenticator
"""
import json
import os
import sys

from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Ctap2
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.utils import sha256

from softfido_hid import open_device

RP = {"id": "persist.example", "name": "p"}
PERMS = ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.GET_ASSERTION
SALT = b"s" * 32


def hmac(ctap, cred_id):
    ext = HmacSecretExtension(ctap)
    inp = ext.process_get_input({"hmacGetSecret": {"salt1": SALT}})
    a = ctap.get_assertion(RP["id"], sha256(b"x"), [{"type": "public-key", "id": cred_id}], {"hmac-secret": inp})
    return a, ext.process_get_output(a.auth_data)["hmacGetSecret"]["output1"]


def main():
    mode, sock, path = sys.argv[1:4]
    ctap = Ctap2(open_device(sock))
    cp = ClientPin(ctap)
    if mode == "before":
        cp.set_pin("4321")
        try:
            cp.get_pin_token("0000", PERMS)
            raise SystemExit("wrong PIN accepted")
        except CtapError as e:
            assert e.code == CtapError.ERR.PIN_INVALID, e
        att = ctap.make_credential(sha256(b"c"), RP, {"id": b"u", "name": "u"}, [{"type": "public-key", "alg": -7}],
                                   extensions={"hmac-secret": True})
        cred_id = att.auth_data.credential_data.credential_id
        a, out = hmac(ctap, cred_id)
        json.dump({"id": cred_id.hex(), "out": out.hex(), "counter": a.auth_data.counter,
                   "aaguid": ctap.info.aaguid.hex()}, open(path, "w"))
        return 0
    want = json.load(open(path))
    assert ctap.info.options["clientPin"] is True, "PIN lost"
    assert ctap.info.aaguid.hex() == want["aaguid"], "AAGUID changed"
    assert cp.get_pin_retries()[0] == 7, "retries not kept: %r" % (cp.get_pin_retries(),)
    a, out = hmac(ctap, bytes.fromhex(want["id"]))
    assert out.hex() == want["out"], "hmac-secret changed across a restart"
    assert a.auth_data.counter > want["counter"], "signCount went back"
    cp.get_pin_token("4321", PERMS)
    assert cp.get_pin_retries()[0] == 8
    return 0


if __name__ == "__main__":
    sys.exit(main())
