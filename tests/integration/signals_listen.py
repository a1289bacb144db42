#!/usr/bin/python3
# signals_listen.py — a client that asks tokensealed for vault signals (Manager.Subscribe, unless
# "nosub") and writes every org.tokenseal1 signal it receives, one line each, to OUTFILE:
#   MEMBER PATH ARG...        (PropertiesChanged: "PropertiesChanged PATH Locked=... LockReason=..."))
# It also writes READYFILE once subscribed. Signals are taken with a message filter, so directed
# signals (addressed to this connection alone) and broadcast ones alike are seen.
#
#   signals_listen.py ADDRESS OUTFILE READYFILE [nosub]
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

address, outfile, readyfile = sys.argv[1:4]
subscribe = len(sys.argv) < 5 or sys.argv[4] != "nosub"
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(address)
out = open(outfile, "a", buffering=1)


def fmt(v):
    if isinstance(v, dbus.Boolean):
        return "true" if v else "false"
    if isinstance(v, (dbus.Array, list)):
        return ",".join(fmt(x) for x in v)
    return str(v)


def on_message(bus, msg):
    if msg.get_type() != 4:   # signals only
        return
    iface = msg.get_interface() or ""
    if not (iface.startswith("org.tokenseal1") or iface == "org.freedesktop.DBus.Properties"):
        return
    args = msg.get_args_list()
    if msg.get_member() == "PropertiesChanged" and len(args) >= 2:
        words = ["%s=%s" % (k, fmt(v)) for k, v in sorted(args[1].items())]
        if len(args) > 2 and args[2]:
            words.append("invalidated=" + fmt(args[2]))
    else:
        words = [fmt(a) for a in args]
    out.write(" ".join([msg.get_member(), msg.get_path()] + words) + "\n")


bus.add_message_filter(on_message)
# A match for broadcasts too: this client must see what would be broadcast, were anything broadcast.
bus.add_match_string("type='signal',sender='org.tokenseal1'")
if subscribe:
    bus.call_blocking("org.tokenseal1", "/org/tokenseal1", "org.tokenseal1.Manager", "Subscribe", "", [])
open(readyfile, "w").write("ready\n")
GLib.MainLoop().run()
