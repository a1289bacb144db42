#!/usr/bin/python3
# isolation_escrow_pin.py ADDRESS VAULT_PATH KEYFILE... — the attack of isolation-escrow-pin.sh, as the
# attacking uid: 4 SetEscrow calls of 16 distinct RSA keys each (the keys of KEYFILE 0..63), pipelined on
# one connection with a Lock right behind them, so that each call comes back to a locked vault; prints
# each reply.
import sys
import time

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
addr, path = sys.argv[1], sys.argv[2]
keys = [open(f).read().strip() for f in sys.argv[3:]]
bus = dbus.bus.BusConnection(addr)
vault = dbus.Interface(bus.get_object("org.tokenseal1", path, introspect=False), "org.tokenseal1.Vault")
loop = GLib.MainLoop()
pending = [0]
t0 = time.monotonic()


def handlers(name):
    def ok(*a):
        print("%6.2fs %s: OK" % (time.monotonic() - t0, name), flush=True)
        fin()

    def err(e):
        print("%6.2fs %s: %s: %s" % (time.monotonic() - t0, name, e.get_dbus_name(), e.get_dbus_message()),
              flush=True)
        fin()

    pending[0] += 1
    return ok, err


def fin():
    pending[0] -= 1
    if pending[0] == 0:
        loop.quit()


for c in range(4):
    recs = dbus.Array(["k%d %s" % (j, keys[c * 16 + j]) for j in range(16)], signature="s")
    ok, err = handlers("SetEscrow#%d" % c)
    vault.SetEscrow(recs, dbus.UInt32(1), reply_handler=ok, error_handler=err, timeout=60)
ok, err = handlers("Lock")
vault.Lock(reply_handler=ok, error_handler=err, timeout=60)
loop.run()
