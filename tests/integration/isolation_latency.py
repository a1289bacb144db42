#!/usr/bin/python3
# isolation_latency.py — how long the daemon makes a bystander wait: Peer.Ping and Vault.Unwrap, one
# after the other, for SECONDS; prints LABEL, the number of calls, p50, p99 and the worst, in ms, and
# exits 1 when p99 >= LIMIT_MS, or the worst >= MAX_MS when given (tests/integration/isolation-*.sh).
#
#   isolation_latency.py ADDRESS VAULT_PATH BLOB_HEX SECONDS LIMIT_MS LABEL [MAX_MS]
import sys
import time

import dbus


def main():
    if len(sys.argv) not in (7, 8):
        raise SystemExit("usage: isolation_latency.py ADDRESS VAULT_PATH BLOB_HEX SECONDS LIMIT_MS LABEL [MAX_MS]")
    address, path, blob, seconds, limit, label = sys.argv[1:7]
    worst_limit = float(sys.argv[7]) if len(sys.argv) == 8 else None
    conn = dbus.bus.BusConnection(address)
    blob = dbus.ByteArray(bytes.fromhex(blob))
    ctx = dbus.Dictionary({}, signature="ss")
    samples = []
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        t = time.perf_counter()
        conn.call_blocking("org.tokenseal1", path, "org.freedesktop.DBus.Peer", "Ping", "", [], timeout=120)
        samples.append(time.perf_counter() - t)
        t = time.perf_counter()
        conn.call_blocking("org.tokenseal1", path, "org.tokenseal1.Vault", "Unwrap", "aya{ss}", [blob, ctx],
                           timeout=120, byte_arrays=True)
        samples.append(time.perf_counter() - t)
        time.sleep(0.005)
    samples.sort()
    n = len(samples)
    p50 = samples[n // 2] * 1000
    p99 = samples[min(n - 1, (n * 99) // 100)] * 1000
    print("%s: %d calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (label, n, p50, p99, samples[-1] * 1000))
    sys.exit(1 if p99 >= float(limit) or (worst_limit is not None and samples[-1] * 1000 >= worst_limit) else 0)


main()
