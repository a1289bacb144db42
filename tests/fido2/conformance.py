"""conformance.py — softfido as seen by an independent CTAP2 client (Yubico's python-fido2 0.9.1).

Run by tests/integration/fido2-softfido-conformance.sh:
    /usr/bin/python3 conformance.py --socket S --control C --protocols 1,2 --aaguid HEX [--slow]
Each check prints "ok - name" or "not ok - name: why"; the exit status is the number of failures
(capped at 100). The authenticator must be fresh (no PIN) when this starts.
"""
import argparse
import os
import select
import socket
import struct
import sys
import threading
import time
import traceback

from fido2 import cbor
from fido2.attestation import AttestationType, PackedAttestation
from fido2.client import Fido2Client
from fido2.ctap import CtapError, STATUS
from fido2.ctap2 import ClientPin, Ctap2, PinProtocolV1, PinProtocolV2
from fido2.ctap2.extensions import HmacSecretExtension
from fido2.utils import sha256
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions

from softfido_hid import SeqpacketConnection, control, open_device, REPORT_LEN
from fido2.hid import CtapHidDevice
from fido2.hid.base import HidDescriptor

ERR = CtapError.ERR
PIN = "1234"
PIN2 = "correct horse"
ORIGIN = "https://example.com"
RP = {"id": "example.com", "name": "Example"}
USER = {"id": b"user-1", "name": "user"}
ES256 = [{"type": "public-key", "alg": -7}]
PROTOCOLS = {1: PinProtocolV1, 2: PinProtocolV2}

args = None
failures = []


def check(name):
    """Decorator: runs the test, records the outcome."""
    def wrap(fn):
        def run(*a, **kw):
            try:
                fn(*a, **kw)
                print("ok - %s" % name, flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failures.append(name)
                print("not ok - %s: %r" % (name, e), flush=True)
                traceback.print_exc(file=sys.stdout)
        run.__name__ = fn.__name__
        return run
    return wrap


def expect_ctap_error(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except CtapError as e:
        if e.code != code:
            raise AssertionError("expected %s, got %s" % (code, e.code))
        return
    raise AssertionError("expected %s, got success" % code)


def ctl(line):
    out = control(args.control, line)
    if line != "status" and out != "ok\n":
        raise AssertionError("control %r: %r" % (line, out))
    return out


def status():
    return dict(kv.split("=", 1) for kv in ctl("status").split())


def pin_token(cp, pin):
    """A token for mc and ga: 0.9.1's get_pin_token sends no permissions unless given some."""
    return cp.get_pin_token(pin, ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.GET_ASSERTION)


def new_ctap():
    return Ctap2(open_device(args.socket))


def cdh(tag=b"challenge"):
    return sha256(tag + os.urandom(8))


def make_cred(ctap, rp=RP, hmac=True, **kw):
    ext = {"hmac-secret": True} if hmac else None
    return ctap.make_credential(cdh(), rp, USER, ES256, extensions=ext, **kw)


def hmac_get(ctap, proto_cls, cred_id, salts, rp_id=RP["id"], pin_token=None, options=None):
    """getAssertion with hmac-secret; returns (assertion, [outputs])."""
    protocol = proto_cls()
    ext = HmacSecretExtension(ctap, protocol)
    data = {"salt1": salts[0]}
    if len(salts) > 1:
        data["salt2"] = salts[1]
    ext_in = ext.process_get_input({"hmacGetSecret": data})
    h = cdh(b"get")
    pin_auth = protocol.authenticate(pin_token, h) if pin_token else None
    a = ctap.get_assertion(rp_id, h, [{"type": "public-key", "id": cred_id}],
                           {"hmac-secret": ext_in}, options, pin_auth,
                           protocol.VERSION if pin_token else None)
    out = ext.process_get_output(a.auth_data)["hmacGetSecret"]
    return a, h, [out["output1"]] + ([out["output2"]] if "output2" in out else [])


# ---- CTAPHID --------------------------------------------------------------

class RawHid:
    """CTAPHID frames by hand, for the error paths a well-behaved client never takes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(args.socket)

    def close(self):
        self.sock.close()

    def send_pkt(self, pkt):
        self.sock.send(pkt.ljust(REPORT_LEN, b"\0"))

    def send(self, cid, cmd, data, bcnt=None):
        bcnt = len(data) if bcnt is None else bcnt
        self.send_pkt(struct.pack(">IBH", cid, 0x80 | cmd, bcnt) + data[:57])
        rest, seq = data[57:], 0
        while rest:
            self.send_pkt(struct.pack(">IB", cid, seq) + rest[:59])
            rest, seq = rest[59:], seq + 1

    def recv(self, timeout=2.0, skip_keepalive=True):
        """(cid, cmd, data) of the next message, or None after timeout."""
        while True:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return None
            p = self.sock.recv(REPORT_LEN + 1)
            assert len(p) == REPORT_LEN, "report of %d bytes" % len(p)
            cid, cmd, bcnt = struct.unpack(">IBH", p[:7])
            assert cmd & 0x80, "expected an init packet, got %r" % p[:8]
            data, seq = p[7:7 + bcnt], 0
            while len(data) < bcnt:
                q = self.sock.recv(REPORT_LEN + 1)
                qcid, qseq = struct.unpack(">IB", q[:5])
                assert qcid == cid and qseq == seq, "bad continuation"
                data += q[5:5 + bcnt - len(data)]
                seq += 1
            if skip_keepalive and cmd == 0x80 | 0x3B:
                continue
            return cid, cmd & 0x7F, data

    def init(self):
        nonce = os.urandom(8)
        self.send(0xFFFFFFFF, 0x06, nonce)
        cid, cmd, data = self.recv()
        assert (cid, cmd, data[:8]) == (0xFFFFFFFF, 0x06, nonce), "bad INIT answer"
        return struct.unpack(">I", data[8:12])[0]

    def expect_error(self, cid, code, what):
        m = self.recv()
        assert m is not None, "%s: no answer" % what
        assert m[:2] == (cid, 0x3F) and m[2] == bytes([code]), "%s: got %r" % (what, m)

    def ping(self, cid):
        payload = os.urandom(100)
        self.send(cid, 0x01, payload)
        m = self.recv()
        assert m == (cid, 0x01, payload), "ping failed: %r" % (m,)


@check("CTAPHID INIT: protocol 2, capabilities CBOR|WINK|NMSG, PING and WINK")
def t_hid_init():
    dev = open_device(args.socket)
    assert dev.version == 2, dev.version
    assert dev.capabilities == 0x01 | 0x04 | 0x08, dev.capabilities
    msg = os.urandom(1000)  # many continuation packets both ways
    assert dev.ping(msg) == msg
    dev.wink()
    dev.close()


@check("CTAPHID: two channels on one connection are independent")
def t_hid_channels():
    conn = SeqpacketConnection(args.socket)
    desc = HidDescriptor(args.socket, 0, 0, REPORT_LEN, REPORT_LEN)
    a, b = CtapHidDevice(desc, conn), CtapHidDevice(desc, conn)
    assert a._channel_id != b._channel_id
    for _ in range(3):
        assert a.ping(b"a" * 70) == b"a" * 70
        assert b.ping(b"b" * 70) == b"b" * 70
    assert Ctap2(b).get_info().aaguid == Ctap2(a).get_info().aaguid
    conn.close()


@check("CTAPHID errors: channel, sequence, length, busy, timeout, command")
def t_hid_errors():
    h = RawHid()
    try:
        cid = h.init()
        h.send(0x12345678, 0x01, b"x")
        h.expect_error(0x12345678, 0x0B, "unallocated channel")
        h.send(0xFFFFFFFF, 0x01, b"x")
        h.expect_error(0xFFFFFFFF, 0x0B, "PING on the broadcast channel")
        h.send(0, 0x06, os.urandom(8))
        h.expect_error(0, 0x0B, "channel 0")
        h.send(0xFFFFFFFF, 0x06, b"1234567")
        h.expect_error(0xFFFFFFFF, 0x03, "INIT with 7 bytes")
        h.send_pkt(struct.pack(">IBH", cid, 0x81, 7610))
        h.expect_error(cid, 0x03, "7610-byte message")
        h.send(cid, 0x03, b"\0" * 10)
        h.expect_error(cid, 0x01, "U2F MSG")
        h.send(cid, 0x55, b"")
        h.expect_error(cid, 0x01, "unknown command")
        h.send(cid, 0x08, b"x")
        h.expect_error(cid, 0x03, "WINK with data")
        h.send(cid, 0x10, b"")
        h.expect_error(cid, 0x03, "empty CBOR")
        # A continuation packet out of nowhere is ignored.
        h.send_pkt(struct.pack(">IB", cid, 0) + b"junk")
        assert h.recv(timeout=0.3) is None, "spurious continuation answered"
        h.ping(cid)
        # Wrong sequence number.
        h.send_pkt(struct.pack(">IBH", cid, 0x81, 100) + b"a" * 57)
        h.send_pkt(struct.pack(">IB", cid, 1) + b"b" * 43)
        h.expect_error(cid, 0x04, "sequence 1 instead of 0")
        # Another channel while a message is half sent.
        other = h.init()
        h.send_pkt(struct.pack(">IBH", cid, 0x81, 100) + b"a" * 57)
        h.send(other, 0x01, b"x")
        h.expect_error(other, 0x06, "channel busy")
        # ...and the half message times out.
        h.expect_error(cid, 0x05, "message timeout")
        h.ping(cid)
        h.ping(other)
        # INIT on an allocated channel resynchronises it and keeps the CID.
        nonce = os.urandom(8)
        h.send(cid, 0x06, nonce)
        c2, cmd, data = h.recv()
        assert (c2, cmd, data[:8], struct.unpack(">I", data[8:12])[0]) == (cid, 0x06, nonce, cid)
        # A channel belongs to the connection that opened it.
        h2 = RawHid()
        try:
            h2.send(cid, 0x01, b"x")
            h2.expect_error(cid, 0x0B, "foreign channel")
        finally:
            h2.close()
        h.ping(cid)
    finally:
        h.close()


# ---- CTAP2 parsing -----------------------------------------------------------

@check("getInfo: versions, hmac-secret, AAGUID, options, PIN protocols")
def t_get_info():
    info = new_ctap().info
    assert info.versions == ["FIDO_2_0", "FIDO_2_1"], info.versions
    assert info.extensions == ["hmac-secret"], info.extensions
    assert info.aaguid.hex() == args.aaguid, info.aaguid.hex()
    assert info.options == {"rk": False, "up": True, "clientPin": False, "pinUvAuthToken": True,
                            "makeCredUvNotRqd": True}, info.options
    assert info.pin_uv_protocols == sorted(args.protocols, reverse=True), info.pin_uv_protocols
    assert info.max_msg_size >= 1024
    assert info.max_cred_id_length >= 64


@check("hostile CBOR: invalid, wrong types, missing parameters, unknown command")
def t_cbor_errors():
    ctap = new_ctap()
    dev = ctap.device

    def raw(b):
        r = dev.call(0x10, b)
        return r[0]

    assert raw(b"\x01\xa1") == ERR.INVALID_CBOR               # truncated map
    assert raw(b"\x01\xa1\x01\x41") == ERR.INVALID_CBOR       # truncated byte string
    assert raw(b"\x01" + cbor.encode({1: b"x"}) + b"\x00") == ERR.INVALID_CBOR  # trailing byte
    assert raw(b"\x01\x80") == ERR.CBOR_UNEXPECTED_TYPE       # array, not map
    assert raw(b"\x01\xa1\x61a\x01") == ERR.CBOR_UNEXPECTED_TYPE  # text key
    assert raw(b"\x01\xa2\x01\x41a\x01\x41b") == ERR.INVALID_CBOR  # duplicate key
    assert raw(b"\x55") == ERR.INVALID_COMMAND
    assert raw(b"\x04\xa0") == ERR.INVALID_LENGTH             # getInfo takes nothing
    assert raw(b"\x08") == ERR.NOT_ALLOWED                    # getNextAssertion
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.make_credential, cdh(), RP, USER, None)
    expect_ctap_error(ERR.CBOR_UNEXPECTED_TYPE, ctap.make_credential, "not bytes", RP, USER, ES256)
    expect_ctap_error(ERR.CBOR_UNEXPECTED_TYPE, ctap.make_credential, cdh(), "rp", USER, ES256)
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.make_credential, cdh(), {"name": "x"}, USER, ES256)
    expect_ctap_error(ERR.CBOR_UNEXPECTED_TYPE, ctap.make_credential, cdh(), RP, USER, ES256,
                      options={"up": 1})
    expect_ctap_error(ERR.CBOR_UNEXPECTED_TYPE, ctap.make_credential, cdh(), RP, USER, ES256,
                      extensions={"hmac-secret": "yes"})
    expect_ctap_error(ERR.UNSUPPORTED_ALGORITHM, ctap.make_credential, cdh(), RP, USER,
                      [{"type": "public-key", "alg": -257}])
    expect_ctap_error(ERR.UNSUPPORTED_OPTION, ctap.make_credential, cdh(), RP, USER, ES256,
                      options={"rk": True})
    expect_ctap_error(ERR.INVALID_OPTION, ctap.make_credential, cdh(), RP, USER, ES256,
                      options={"up": False})
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.get_assertion, RP["id"], None)
    expect_ctap_error(ERR.CBOR_UNEXPECTED_TYPE, ctap.get_assertion, 5, cdh())
    expect_ctap_error(ERR.NO_CREDENTIALS, ctap.get_assertion, RP["id"], cdh())
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.client_pin, 1, None)
    expect_ctap_error(ERR.INVALID_SUBCOMMAND, ctap.client_pin, 1, 0x77)
    expect_ctap_error(ERR.INVALID_PARAMETER, ctap.client_pin, 9, 2)
    # The authenticator still works.
    assert ctap.get_info().versions


# ---- credentials, no PIN ---------------------------------------------------------

def verify_packed(att, h):
    assert att.fmt == "packed", att.fmt
    assert "x5c" not in att.att_statement
    res = PackedAttestation().verify(att.att_statement, att.auth_data, h)
    assert res.attestation_type == AttestationType.SELF, res.attestation_type
    # ...and the verifier does look at the signature.
    try:
        PackedAttestation().verify(att.att_statement, att.auth_data, sha256(h))
    except Exception:  # InvalidSignature or InvalidData, depending on the library
        return
    raise AssertionError("self attestation verified for another clientDataHash")


@check("makeCredential: packed self attestation verifies, flags UP|AT|ED, non-resident")
def t_make_credential():
    ctap = new_ctap()
    h = cdh()
    att = ctap.make_credential(h, RP, USER, [{"type": "public-key", "alg": -257}] + ES256,
                               extensions={"hmac-secret": True})
    verify_packed(att, h)
    ad = att.auth_data
    assert ad.rp_id_hash == sha256(RP["id"].encode())
    assert ad.flags == 0x01 | 0x40 | 0x80, hex(ad.flags)
    assert ad.extensions == {"hmac-secret": True}
    assert ad.credential_data.aaguid.hex() == args.aaguid
    assert ad.credential_data.public_key[3] == -7
    assert len(ad.credential_data.credential_id) <= ctap.info.max_cred_id_length
    att2 = make_cred(ctap, hmac=False)
    assert att2.auth_data.flags == 0x41 and att2.auth_data.extensions is None
    assert att2.auth_data.counter > ad.counter, "signCount did not grow"


@check("getAssertion: signature verifies, counter grows, other RP / unknown id get NO_CREDENTIALS")
def t_get_assertion():
    ctap = new_ctap()
    att = make_cred(ctap)
    cd = att.auth_data.credential_data
    desc = [{"type": "public-key", "id": cd.credential_id}]
    h = cdh()
    a = ctap.get_assertion(RP["id"], h, desc)
    a.verify(h, cd.public_key)
    assert a.auth_data.flags == 0x01, hex(a.auth_data.flags)
    assert a.credential["id"] == cd.credential_id
    assert a.number_of_credentials is None
    a2 = ctap.get_assertion(RP["id"], h, desc)
    assert a2.auth_data.counter > a.auth_data.counter
    # A forged signature must not verify: the check above is meaningful.
    try:
        cd.public_key.verify(a.auth_data + h, a2.signature)
        raise AssertionError("a signature over other data verified")
    except Exception as e:  # cryptography's InvalidSignature
        if isinstance(e, AssertionError):
            raise
    expect_ctap_error(ERR.NO_CREDENTIALS, ctap.get_assertion, "other.example", cdh(), desc)
    bad = bytearray(cd.credential_id)
    bad[-1] ^= 1
    expect_ctap_error(ERR.NO_CREDENTIALS, ctap.get_assertion, RP["id"], cdh(),
                      [{"type": "public-key", "id": bytes(bad)}])
    # The right id among strangers is found.
    junk = [{"type": "public-key", "id": os.urandom(n)} for n in (16, 62, 128)]
    a3 = ctap.get_assertion(RP["id"], cdh(), junk + desc)
    assert a3.credential["id"] == cd.credential_id
    expect_ctap_error(ERR.UNSUPPORTED_OPTION, ctap.get_assertion, RP["id"], cdh(), desc,
                      options={"rk": True})
    # excludeList with our credential: touch, then CREDENTIAL_EXCLUDED.
    expect_ctap_error(ERR.CREDENTIAL_EXCLUDED, ctap.make_credential, cdh(), RP, USER, ES256, desc)


@check("hmac-secret without UV: deterministic per salt, two salts, per credential")
def t_hmac_secret_no_uv():
    ctap = new_ctap()
    cd = make_cred(ctap).auth_data.credential_data
    s1, s2 = os.urandom(32), os.urandom(32)
    for proto in args.protocols:
        a, h, o1 = hmac_get(ctap, PROTOCOLS[proto], cd.credential_id, [s1])
        a.verify(h, cd.public_key)
        assert a.auth_data.flags == 0x81, hex(a.auth_data.flags)
        _, _, o1b = hmac_get(ctap, PROTOCOLS[proto], cd.credential_id, [s1])
        _, _, o12 = hmac_get(ctap, PROTOCOLS[proto], cd.credential_id, [s1, s2])
        assert len(o1[0]) == 32 and o1 == o1b, "same salt, different output"
        assert o12[0] == o1[0] and o12[1] != o1[0], "second salt"
        t_hmac_secret_no_uv.outputs[proto] = o1[0]
    if len(args.protocols) == 2:
        assert t_hmac_secret_no_uv.outputs[1] == t_hmac_secret_no_uv.outputs[2], \
            "the PIN protocol changed the secret"
    cd2 = make_cred(ctap).auth_data.credential_data
    _, _, other = hmac_get(ctap, PROTOCOLS[args.protocols[0]], cd2.credential_id, [s1])
    assert other[0] != o1[0], "two credentials share a secret"
    # A credential made without hmac-secret gives no output.
    cd3 = make_cred(ctap, hmac=False).auth_data.credential_data
    protocol = PROTOCOLS[args.protocols[0]]()
    ext = HmacSecretExtension(ctap, protocol)
    a = ctap.get_assertion(RP["id"], cdh(), [{"type": "public-key", "id": cd3.credential_id}],
                           {"hmac-secret": ext.process_get_input({"hmacGetSecret": {"salt1": s1}})})
    assert not a.auth_data.extensions


t_hmac_secret_no_uv.outputs = {}


@check("hmac-secret: bad saltAuth, bad salt length, unsupported protocol are refused")
def t_hmac_secret_errors():
    ctap = new_ctap()
    cd = make_cred(ctap).auth_data.credential_data
    desc = [{"type": "public-key", "id": cd.credential_id}]
    proto = PROTOCOLS[args.protocols[0]]()
    cp = ClientPin(ctap, proto)
    ka, ss = cp._get_shared_secret()
    enc = proto.encrypt(ss, os.urandom(32))
    good = {1: ka, 2: enc, 3: proto.authenticate(ss, enc), 4: proto.VERSION}
    bad_auth = dict(good)
    bad_auth[3] = bytes(len(good[3]))
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ctap.get_assertion, RP["id"], cdh(), desc, {"hmac-secret": bad_auth})
    short = proto.encrypt(ss, os.urandom(16))
    expect_ctap_error(ERR.INVALID_LENGTH, ctap.get_assertion, RP["id"], cdh(), desc,
                      {"hmac-secret": {1: ka, 2: short, 3: proto.authenticate(ss, short), 4: proto.VERSION}})
    expect_ctap_error(ERR.INVALID_PARAMETER, ctap.get_assertion, RP["id"], cdh(), desc,
                      {"hmac-secret": {**good, 4: 7}})
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.get_assertion, RP["id"], cdh(), desc,
                      {"hmac-secret": {1: ka, 2: enc}})
    off_curve = dict(ka)
    off_curve[-3] = bytes(32)
    expect_ctap_error(ERR.INVALID_PARAMETER, ctap.get_assertion, RP["id"], cdh(), desc,
                      {"hmac-secret": {**good, 1: off_curve}})
    # And a good one still works afterwards.
    a = ctap.get_assertion(RP["id"], cdh(), desc, {"hmac-secret": good})
    assert a.auth_data.extensions and "hmac-secret" in a.auth_data.extensions


# ---- user presence ---------------------------------------------------------------------

@check("user presence: deny, up=false answers silently, keepalive UPNEEDED, cancel, late approve")
def t_user_presence():
    ctap = new_ctap()
    cd = make_cred(ctap).auth_data.credential_data
    desc = [{"type": "public-key", "id": cd.credential_id}]
    try:
        ctl("up deny")
        expect_ctap_error(ERR.OPERATION_DENIED, ctap.get_assertion, RP["id"], cdh(), desc)
        expect_ctap_error(ERR.OPERATION_DENIED, ctap.make_credential, cdh(), RP, USER, ES256)
        a = ctap.get_assertion(RP["id"], cdh(), desc, options={"up": False})
        assert a.auth_data.flags & 0x01 == 0, "UP flag without a touch"
        ctl("up approve-once")
        ctap.get_assertion(RP["id"], cdh(), desc)
        expect_ctap_error(ERR.OPERATION_DENIED, ctap.get_assertion, RP["id"], cdh(), desc)

        ctl("up timeout")
        seen, ev = [], threading.Event()
        timer = threading.Timer(0.5, ev.set)
        timer.start()
        t0 = time.time()
        expect_ctap_error(ERR.KEEPALIVE_CANCEL, ctap.get_assertion, RP["id"], cdh(), desc,
                          event=ev, on_keepalive=seen.append)
        assert seen and seen[0] == STATUS.UPNEEDED, seen
        assert time.time() - t0 < 5
        # The touch comes while the request waits.
        threading.Timer(0.4, lambda: control(args.control, "up approve")).start()
        a = ctap.get_assertion(RP["id"], cdh(), desc)
        assert a.auth_data.flags & 0x01
        ctl("up timeout")
        ev = threading.Event()
        threading.Timer(0.3, ev.set).start()
        expect_ctap_error(ERR.KEEPALIVE_CANCEL, ctap.selection, event=ev)
        if args.slow:
            t0 = time.time()
            expect_ctap_error(ERR.USER_ACTION_TIMEOUT, ctap.selection)
            assert 29 < time.time() - t0 < 40
    finally:
        ctl("up approve")
    ctap.selection()


# ---- PIN ------------------------------------------------------------------------------------

@check("clientPIN: setPIN, policy, retries, wrong PINs, PIN_AUTH_BLOCKED until power cycle")
def t_pin(proto_cls):
    ctap = new_ctap()
    cp = ClientPin(ctap, proto_cls())
    assert cp.get_pin_retries() == (8, False), cp.get_pin_retries()
    expect_ctap_error(ERR.PIN_NOT_SET, pin_token, cp, PIN)
    # Three characters: below the minimum (the client library would refuse to pad it).
    ka, ss = cp._get_shared_secret()
    enc = cp.protocol.encrypt(ss, b"123".ljust(64, b"\0"))
    expect_ctap_error(ERR.PIN_POLICY_VIOLATION, ctap.client_pin, cp.protocol.VERSION, 3, key_agreement=ka,
                      new_pin_enc=enc, pin_uv_param=cp.protocol.authenticate(ss, enc))
    # 64 bytes without a terminator: longer than 63.
    ka, ss = cp._get_shared_secret()
    enc = cp.protocol.encrypt(ss, b"9" * 64)
    expect_ctap_error(ERR.PIN_POLICY_VIOLATION, ctap.client_pin, cp.protocol.VERSION, 3, key_agreement=ka,
                      new_pin_enc=enc, pin_uv_param=cp.protocol.authenticate(ss, enc))
    # A wrong pinUvAuthParam.
    ka, ss = cp._get_shared_secret()
    enc = cp.protocol.encrypt(ss, PIN.encode().ljust(64, b"\0"))
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ctap.client_pin, cp.protocol.VERSION, 3, key_agreement=ka,
                      new_pin_enc=enc, pin_uv_param=bytes(len(cp.protocol.authenticate(ss, enc))))
    cp.set_pin(PIN)
    assert ctap.get_info().options["clientPin"] is True
    expect_ctap_error(ERR.NOT_ALLOWED, cp.set_pin, PIN)
    assert status()["pin_set"] == "1"
    token = pin_token(cp, PIN)
    assert len(token) == 32

    expect_ctap_error(ERR.PIN_INVALID, pin_token, cp, "0000")
    assert cp.get_pin_retries() == (7, False)
    expect_ctap_error(ERR.PIN_INVALID, pin_token, cp, "0001")
    assert cp.get_pin_retries()[0] == 6
    expect_ctap_error(ERR.PIN_AUTH_BLOCKED, pin_token, cp, "0002")
    assert cp.get_pin_retries() == (5, True)
    # Blocked even for the right PIN, and no try is spent.
    expect_ctap_error(ERR.PIN_AUTH_BLOCKED, pin_token, cp, PIN)
    assert cp.get_pin_retries() == (5, True)
    ctl("power-cycle")
    assert cp.get_pin_retries() == (5, False)
    pin_token(cp, PIN)
    assert cp.get_pin_retries() == (8, False), "a good PIN resets the retries"

    # changePIN: the old PIN stops working, the new one works.
    cp.change_pin(PIN, PIN2)
    expect_ctap_error(ERR.PIN_INVALID, pin_token, cp, PIN)
    pin_token(cp, PIN2)
    cp.change_pin(PIN2, PIN)
    assert cp.get_pin_retries() == (8, False)


@check("pinUvAuthToken: UV flag, permissions, RP binding, single use, zero-length param")
def t_token(proto_cls):
    ctap = new_ctap()
    proto = proto_cls()
    cp = ClientPin(ctap, proto)
    P = ClientPin.PERMISSION

    # makeCredUvNotRqd: a non-resident credential needs no UV even with a PIN set.
    att = make_cred(ctap)
    assert att.auth_data.flags & 0x04 == 0
    cd = att.auth_data.credential_data
    desc = [{"type": "public-key", "id": cd.credential_id}]

    def mc(tok, rp=RP):
        h = cdh()
        return ctap.make_credential(h, rp, USER, ES256, pin_uv_param=proto.authenticate(tok, h),
                                    pin_uv_protocol=proto.VERSION)

    def ga(tok, rp_id=RP["id"], options=None):
        h = cdh()
        return ctap.get_assertion(rp_id, h, desc, options=options, pin_uv_param=proto.authenticate(tok, h),
                                  pin_uv_protocol=proto.VERSION)

    att = mc(cp.get_pin_token(PIN, P.MAKE_CREDENTIAL, RP["id"]))
    assert att.auth_data.flags & 0x05 == 0x05, hex(att.auth_data.flags)
    a = ga(cp.get_pin_token(PIN, P.GET_ASSERTION, RP["id"]))
    assert a.auth_data.flags & 0x05 == 0x05, hex(a.auth_data.flags)
    # Wrong permission, wrong RP, a param that is not the token's.
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ga, cp.get_pin_token(PIN, P.MAKE_CREDENTIAL, RP["id"]))
    expect_ctap_error(ERR.PIN_AUTH_INVALID, mc, cp.get_pin_token(PIN, P.GET_ASSERTION, RP["id"]))
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ga, cp.get_pin_token(PIN, P.GET_ASSERTION, "other.example"))
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ga, os.urandom(32))
    expect_ctap_error(ERR.UNAUTHORIZED_PERMISSION, cp.get_pin_token, PIN, P.CREDENTIAL_MGMT)
    expect_ctap_error(ERR.INVALID_PARAMETER, cp.get_pin_token, PIN, 0)  # no permissions at all
    # A token is spent by a ceremony with a touch, not by a silent one.
    tok = cp.get_pin_token(PIN, P.GET_ASSERTION | P.MAKE_CREDENTIAL)
    a = ga(tok, options={"up": False})
    assert a.auth_data.flags & 0x05 == 0x04, hex(a.auth_data.flags)
    ga(tok)
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ga, tok)
    # A token without an RP gets bound to the first one it is used for.
    tok = cp.get_pin_token(PIN, P.GET_ASSERTION | P.MAKE_CREDENTIAL)
    mc(tok, rp={"id": "first.example", "name": "x"})
    tok = cp.get_pin_token(PIN, P.GET_ASSERTION | P.MAKE_CREDENTIAL)
    ga(tok, options={"up": False})
    expect_ctap_error(ERR.PIN_AUTH_INVALID, mc, tok, {"id": "second.example", "name": "x"})
    # The legacy getPinToken gives mc and ga.
    legacy = ClientPin(ctap, proto)
    legacy._supports_permissions = False
    tok = legacy.get_pin_token(PIN)
    ga(tok)
    # A zero-length pinUvAuthParam: "which key do you mean?" -> touch, then PIN_INVALID.
    expect_ctap_error(ERR.PIN_INVALID, ctap.get_assertion, RP["id"], cdh(), desc, pin_uv_param=b"",
                      pin_uv_protocol=proto.VERSION)
    expect_ctap_error(ERR.MISSING_PARAMETER, ctap.get_assertion, RP["id"], cdh(), desc,
                      pin_uv_param=b"x" * 16)
    # A PIN change ends every token.
    tok = cp.get_pin_token(PIN, P.GET_ASSERTION)
    cp.change_pin(PIN, PIN2)
    expect_ctap_error(ERR.PIN_AUTH_INVALID, ga, tok)
    cp.change_pin(PIN2, PIN)


@check("Fido2Client: hmac-secret with PIN (UV) differs from without, repeats per salt, signature verifies")
def t_client_hmac(proto_cls):
    dev = open_device(args.socket)
    client = Fido2Client(dev, ORIGIN)
    client.client_pin = ClientPin(client.ctap2, proto_cls())
    create = PublicKeyCredentialCreationOptions(
        RP, USER, os.urandom(32), ES256, extensions={"hmacCreateSecret": True},
        authenticator_selection={"userVerification": "discouraged"})
    res = client.make_credential(create, pin=PIN)
    assert res.extension_results == {"hmacCreateSecret": True}, res.extension_results
    att = res.attestation_object
    verify_packed(att, res.client_data.hash)
    assert att.auth_data.flags & 0x05 == 0x05
    cd = att.auth_data.credential_data
    salt, salt2 = os.urandom(32), os.urandom(32)

    def get(s, **kw):
        req = PublicKeyCredentialRequestOptions(
            os.urandom(32), rp_id=RP["id"], allow_credentials=[{"type": "public-key", "id": cd.credential_id}],
            user_verification="discouraged", extensions={"hmacGetSecret": s})
        r = client.get_assertion(req, **kw).get_response(0)
        cd.public_key.verify(r.authenticator_data + r.client_data.hash, r.signature)
        return r

    r1 = get({"salt1": salt}, pin=PIN)
    assert r1.authenticator_data.flags & 0x05 == 0x05
    uv1 = r1.extension_results["hmacGetSecret"]["output1"]
    r2 = get({"salt1": salt, "salt2": salt2}, pin=PIN)
    assert r2.extension_results["hmacGetSecret"]["output1"] == uv1, "same salt, other output"
    assert r2.extension_results["hmacGetSecret"]["output2"] != uv1
    # Without the PIN (the client refuses when a PIN is set, so through Ctap2 directly).
    ctap = Ctap2(open_device(args.socket))
    _, _, nouv = hmac_get(ctap, proto_cls, cd.credential_id, [salt])
    assert nouv[0] != uv1, "UV and non-UV outputs are the same"
    _, _, nouv2 = hmac_get(ctap, proto_cls, cd.credential_id, [salt])
    assert nouv2 == nouv
    # UV through Ctap2 with a token agrees with the client's.
    tok = ClientPin(ctap, proto_cls()).get_pin_token(PIN, ClientPin.PERMISSION.GET_ASSERTION, RP["id"])
    _, _, uv = hmac_get(ctap, proto_cls, cd.credential_id, [salt], pin_token=tok)
    assert uv[0] == uv1
    dev.close()


@check("eight wrong PINs block the PIN; reset (after power-up, with touch) clears everything")
def t_block_and_reset(proto_cls):
    ctap = new_ctap()
    cp = ClientPin(ctap, proto_cls())
    cd = make_cred(ctap).auth_data.credential_data
    codes = []
    for i in range(8):
        try:
            pin_token(cp, "9999")
        except CtapError as e:
            codes.append(e.code)
        if (i + 1) % 3 == 0:
            ctl("power-cycle")
    assert codes == [ERR.PIN_INVALID, ERR.PIN_INVALID, ERR.PIN_AUTH_BLOCKED] * 2 + \
        [ERR.PIN_INVALID, ERR.PIN_BLOCKED], codes
    assert cp.get_pin_retries()[0] == 0
    expect_ctap_error(ERR.PIN_BLOCKED, pin_token, cp, PIN)
    expect_ctap_error(ERR.PIN_BLOCKED, cp.change_pin, PIN, PIN2)
    # Reset needs a touch...
    ctl("power-cycle")
    ctl("up deny")
    try:
        expect_ctap_error(ERR.OPERATION_DENIED, ctap.reset)
    finally:
        ctl("up approve")
    ctap.reset()
    info = ctap.get_info()
    assert info.options["clientPin"] is False
    assert info.aaguid.hex() == args.aaguid, "reset changed the AAGUID"
    assert cp.get_pin_retries() == (8, False)
    # ...and takes the credentials with it (the master key is new).
    expect_ctap_error(ERR.NO_CREDENTIALS, ctap.get_assertion, RP["id"], cdh(),
                      [{"type": "public-key", "id": cd.credential_id}])
    if args.slow:
        time.sleep(10.5)
        expect_ctap_error(ERR.NOT_ALLOWED, ctap.reset)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--protocols", default="1,2")
    p.add_argument("--aaguid", required=True)
    p.add_argument("--slow", action="store_true", help="also the 10 s and 30 s timeouts")
    args = p.parse_args()
    args.protocols = sorted(int(x) for x in args.protocols.split(","))

    t_hid_init()
    t_hid_channels()
    t_hid_errors()
    t_get_info()
    t_cbor_errors()
    t_make_credential()
    t_get_assertion()
    t_hmac_secret_no_uv()
    t_hmac_secret_errors()
    t_user_presence()
    # The PIN checks run once per protocol; the last one leaves the key reset.
    for proto in args.protocols:
        print("# PIN/UV auth protocol %d" % proto, flush=True)
        t_pin(PROTOCOLS[proto])
        t_token(PROTOCOLS[proto])
        t_client_hmac(PROTOCOLS[proto])
        t_block_and_reset(PROTOCOLS[proto])
    print("# %d failed" % len(failures))
    return min(len(failures), 100)


if __name__ == "__main__":
    sys.exit(main())
