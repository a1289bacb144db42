#!/usr/bin/python3
# isolation_rekey_flood.py — keep calling RevokeAndRekey on a vault of one's own with wrong secrets for
# every protector listed, so that each call asks the token helper once per protector; until STOP_FILE
# exists, for at most SECONDS. Prints the number of calls and of each error name (used by
# tests/integration/isolation-share.sh).
#
#   isolation_rekey_flood.py ADDRESS VAULT_PATH DROP_ID ID[,ID...] SECONDS STOP_FILE
import collections
import os
import sys
import time

import dbus


def main():
    address, path, drop, ids, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), float(sys.argv[5])
    stop = sys.argv[6]
    conn = dbus.bus.BusConnection(address)
    secrets = "".join("%s AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG-HHHHH\n" % i for i in ids).encode()
    end = time.monotonic() + seconds
    n = 0
    errors = collections.Counter()
    while time.monotonic() < end and not os.path.exists(stop):
        r, w = os.pipe()
        os.write(w, secrets)
        os.close(w)
        try:
            conn.call_blocking("org.tokenseal1", path, "org.tokenseal1.Vault", "RevokeAndRekey", "sh",
                               [drop, dbus.types.UnixFd(r)], timeout=120)
        except dbus.exceptions.DBusException as e:
            errors[e.get_dbus_name()] += 1
        os.close(r)
        n += 1
    print("%d calls %s" % (n, " ".join("%s=%d" % kv for kv in sorted(errors.items()))))


main()
