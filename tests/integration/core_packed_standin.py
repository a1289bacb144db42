#!/usr/bin/python3
# core_packed_standin.py — an org.tokenseal1 that predates the packed batches: its vault object has
# UnwrapBatch (each blob answered as its own "plaintext") and no UnwrapBatchPacked, so a call of that
# gets the bus library's UnknownMethod. Every method called is logged, one line each, to LOG.
#   core_packed_standin.py BUS_ADDRESS READY_FILE LOG
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

VAULT = "org.tokenseal1.Vault"


class OldVault(dbus.service.Object):
    def __init__(self, bus, path, log):
        super().__init__(bus, path)
        self.log = log

    @dbus.service.method(VAULT, in_signature="aaya{ss}", out_signature="aay", byte_arrays=True)
    def UnwrapBatch(self, blobs, context):
        with open(self.log, "a") as f:
            f.write("UnwrapBatch %d\n" % len(blobs))
        return dbus.Array([dbus.ByteArray(b) for b in blobs], signature="ay")


def main():
    address, ready, log = sys.argv[1:4]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    name = dbus.service.BusName("org.tokenseal1", bus)
    OldVault(bus, "/org/tokenseal1/user/0/vault/old", log)
    with open(ready, "w") as f:
        f.write("ready\n")
    GLib.MainLoop().run()
    del name


if __name__ == "__main__":
    main()
