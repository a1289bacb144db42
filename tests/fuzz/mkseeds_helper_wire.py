#!/usr/bin/python3
"""mkseeds_helper_wire.py — seeds for fuzz_helper_wire: request bodies as tokensealed sends them to tokenseal-helper.

    tests/fuzz/mkseeds_helper_wire.py CORPUS_DIR

Layout (daemon/protectors/helper_wire.h): fields of u8 tag | u32 BE length | bytes.
ok-* seeds are requests the helper accepts; bad-* ones it must refuse.
"""
import os
import struct
import sys

OP, TYPE, TCTI, FIDO2_DEVICE, PKCS11_MODULE, FIDO2_TIMEOUT, VAULT_NAME, VAULT_ID, OPTION, PIN, PARAMS, TEST_DEVICES, \
    BOX_KEY = range(1, 14)
RC, ERR, KEK, DESC, SECRET, FACT, VALUE = range(32, 39)


def field(tag, data):
    return struct.pack(">BI", tag, len(data)) + data


def main(out):
    d = os.path.join(out, "helper_wire")
    os.makedirs(d, exist_ok=True)
    common = (field(TCTI, b"swtpm:path=/run/swtpm.sock") + field(FIDO2_TIMEOUT, struct.pack(">I", 30000)) +
              field(VAULT_NAME, b"mail") + field(VAULT_ID, bytes(range(16))))
    seeds = {
        "ok-enroll-fido2": field(OP, b"\x01") + field(TYPE, b"fido2") + common +
                           field(FIDO2_DEVICE, b"/dev/hidraw3") + field(OPTION, b"pin\x00yes") +
                           field(OPTION, b"up\x00no") + field(PIN, b"123456"),
        # A daemon started with --test-devices: the softfido socket transport is allowed.
        "ok-enroll-fido2-test": field(OP, b"\x01") + field(TYPE, b"fido2") + common +
                                field(FIDO2_DEVICE, b"unix:/run/softfido.sock") + field(TEST_DEVICES, b"\x01") +
                                field(OPTION, b"pin\x00yes") + field(PIN, b"123456"),
        "ok-unlock-tpm2": field(OP, b"\x02") + field(TYPE, b"tpm2") + common + field(PIN, b"4321") +
                          field(PARAMS, b"\xa2\x61v\x01\x61h\x42\x00\x01"),
        "ok-describe-pkcs11": field(OP, b"\x03") + field(TYPE, b"pkcs11") + field(PARAMS, b"\xa0"),
        "ok-present-fido2": field(OP, b"\x04") + field(TYPE, b"fido2") + common + field(PARAMS, b"\xa0"),
        "ok-escrow-wrap-key": field(OP, b"\x05") + field(TYPE, b"rsa") + field(PARAMS, b"\x30\x82\x01\x22") +
                              field(BOX_KEY, b"\x01" * 32),
        # A vault's TPM NV counter: action 3 (increment) | handle | 32-byte auth (daemon/protectors/tpm2_nv.h).
        "ok-nv-increment": field(OP, b"\x06") + field(TYPE, b"tpm2") + common +
                           field(PARAMS, b"\x03" + struct.pack(">I", 0x01234567) + b"\x5a" * 32),
        # The daemon's escrow record to a directory ([escrow] publish): options, the bind password as PIN, the file.
        "ok-ldap-put": field(OP, b"\x07") + field(TYPE, b"ldap") + field(OPTION, b"action\x00put") +
                       field(OPTION, b"uri\x00ldaps://dir.example") + field(OPTION, b"base\x00ou=escrow,dc=x") +
                       field(OPTION, b"machine\x00m1") + field(OPTION, b"bind-dn\x00cn=m1,dc=x") +
                       field(PIN, b"secret") + field(PARAMS, b"TSV1" + bytes(60)),
        "bad-op-past-ldap": field(OP, b"\x08") + field(TYPE, b"ldap") + field(PARAMS, b"\xa0"),
        "bad-escrow-with-pin": field(OP, b"\x05") + field(TYPE, b"rsa") + field(PARAMS, b"\x30\x82\x01\x22") +
                               field(BOX_KEY, b"\x01" * 32) + field(PIN, b"\x01" * 49),
        "bad-escrow-no-key": field(OP, b"\x05") + field(TYPE, b"rsa") + field(PARAMS, b"\x30\x82\x01\x22"),
        "bad-box-key-short": field(OP, b"\x05") + field(TYPE, b"rsa") + field(PARAMS, b"\x30\x82\x01\x22") +
                             field(BOX_KEY, b"\x01" * 31),
        "bad-box-key-in-unlock": field(OP, b"\x02") + field(TYPE, b"tpm2") + field(PARAMS, b"\xa0") +
                                 field(BOX_KEY, b"\x01" * 32),
        "bad-truncated": (field(OP, b"\x02") + field(TYPE, b"tpm2") + field(PARAMS, b"\xa0" * 8))[:-3],
        "bad-repeated-op": field(OP, b"\x02") + field(OP, b"\x04") + field(TYPE, b"tpm2") + field(PARAMS, b"\xa0"),
        "bad-reply-in-request": field(OP, b"\x02") + field(TYPE, b"tpm2") + field(KEK, bytes(32)),
        "bad-option-no-nul": field(OP, b"\x01") + field(TYPE, b"tpm2") + field(OPTION, b"pin"),
        "bad-test-devices-zero": field(OP, b"\x04") + field(TYPE, b"fido2") + field(TEST_DEVICES, b"\x00") +
                                 field(PARAMS, b"\xa0"),
        "bad-test-devices-long": field(OP, b"\x04") + field(TYPE, b"fido2") + field(TEST_DEVICES, b"\x01\x01") +
                                 field(PARAMS, b"\xa0"),
        "bad-test-devices-twice": field(OP, b"\x04") + field(TYPE, b"fido2") + field(TEST_DEVICES, b"\x01") +
                                  field(TEST_DEVICES, b"\x01") + field(PARAMS, b"\xa0"),
        "reply-nv": field(RC, struct.pack(">i", 0)) + field(VALUE, struct.pack(">i", 0)) +
                    field(PARAMS, struct.pack(">IQ", 0x01234567, 42)),
        "reply-unlock": field(RC, struct.pack(">i", 0)) + field(VALUE, struct.pack(">i", 0)) + field(KEK, bytes(32)),
        "reply-describe": field(RC, struct.pack(">i", 0)) + field(VALUE, struct.pack(">i", 1)) +
                          field(FACT, b"aaguid\x00c0ffee") + field(FACT, b"pin\x00required"),
        "reply-error": field(RC, struct.pack(">i", -18)) + field(VALUE, struct.pack(">i", 0)) +
                       field(ERR, b"PIN incorrect, 2 tries left"),
    }
    for name, body in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
