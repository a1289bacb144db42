#!/usr/bin/python3
# pam_standin.py — minimal stand-ins for logind and polkit on the private test bus (pam-*.sh tests).
#
#   pam_standin.py ADDRESS logind READYFILE
#       owns org.freedesktop.login1: Manager.GetUser(u), User.Sessions, Session.User/State,
#       and the signals PrepareForSleep / Session.Lock, sent when the test calls
#       org.tokenseal1.test.Control on /test: AddSession(s id, u uid), EmitSleep(b), EmitLock(s id).
#   pam_standin.py ADDRESS polkit READYFILE ACTION LOGFILE [HANG_UID]
#       owns org.freedesktop.PolicyKit1: CheckAuthorization answers (true,false,{}) for ACTION only
#       and appends "subject-kind name action flags" to LOGFILE for each question, and
#       "name action key=value..." (the details, sorted by key) to LOGFILE.details. A question
#       about a subject of uid HANG_UID is never answered (a polkit that keeps a dialog open).
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

PROPS = "org.freedesktop.DBus.Properties"


class Props(dbus.service.Object):
    iface = ""

    def props(self):
        return {}

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        p = self.props()
        if iface != self.iface or name not in p:
            raise dbus.exceptions.DBusException("no such property", name="org.freedesktop.DBus.Error.UnknownProperty")
        return p[name]

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return self.props() if iface == self.iface else {}


class Session(Props):
    iface = "org.freedesktop.login1.Session"

    def __init__(self, bus, sid, uid):
        self.sid, self.uid = sid, uid
        super().__init__(bus, "/org/freedesktop/login1/session/_3" + sid if sid[0].isdigit() else
                         "/org/freedesktop/login1/session/" + sid)

    def props(self):
        return {"Id": self.sid, "State": "active",
                "User": dbus.Struct((dbus.UInt32(self.uid), dbus.ObjectPath("/org/freedesktop/login1/user/_%d" % self.uid)),
                                    signature="uo", variant_level=1)}

    @dbus.service.signal("org.freedesktop.login1.Session", signature="")
    def Lock(self):
        pass


class User(Props):
    iface = "org.freedesktop.login1.User"

    def __init__(self, bus, uid, sessions):
        self.uid, self.sessions = uid, sessions
        super().__init__(bus, "/org/freedesktop/login1/user/_%d" % uid)

    def props(self):
        return {"UID": dbus.UInt32(self.uid),
                "Sessions": dbus.Array([dbus.Struct((s.sid, s.__dbus_object_path__)) for s in self.sessions
                                        if s.uid == self.uid], signature="(so)")}


class Manager(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/org/freedesktop/login1")
        self.bus, self.sessions, self.users = bus, [], {}

    @dbus.service.method("org.freedesktop.login1.Manager", in_signature="u", out_signature="o")
    def GetUser(self, uid):
        if uid not in self.users:
            raise dbus.exceptions.DBusException("no user %d" % uid, name="org.freedesktop.login1.NoSuchUser")
        return self.users[uid].__dbus_object_path__

    @dbus.service.signal("org.freedesktop.login1.Manager", signature="b")
    def PrepareForSleep(self, start):
        pass

    @dbus.service.method("org.tokenseal1.test.Control", in_signature="su", out_signature="")
    def AddSession(self, sid, uid):
        self.sessions.append(Session(self.bus, sid, uid))
        if uid not in self.users:
            self.users[uid] = User(self.bus, uid, self.sessions)

    @dbus.service.method("org.tokenseal1.test.Control", in_signature="b", out_signature="")
    def EmitSleep(self, start):
        self.PrepareForSleep(start)

    @dbus.service.method("org.tokenseal1.test.Control", in_signature="s", out_signature="")
    def EmitLock(self, sid):
        [s for s in self.sessions if s.sid == sid][0].Lock()


class Authority(dbus.service.Object):
    def __init__(self, bus, action, log, hang_uid):
        super().__init__(bus, "/org/freedesktop/PolicyKit1/Authority")
        self.bus, self.action, self.log, self.hang_uid, self.pending = bus, action, log, hang_uid, []

    @dbus.service.method("org.freedesktop.PolicyKit1.Authority", in_signature="(sa{sv})sa{ss}us",
                         out_signature="(bba{ss})", async_callbacks=("ok", "err"))
    def CheckAuthorization(self, subject, action, details, flags, cancel, ok, err):
        if subject[0] == "unix-process":
            # A client of the private socket: its process, by pid and start time, and its uid.
            name = "pid:%d:%d:%d" % (subject[1]["pid"], subject[1]["start-time"], subject[1]["uid"])
            uid = int(subject[1]["uid"])
        else:
            name = subject[1].get("name", "-")
            uid = None
        with open(self.log, "a") as f:
            f.write("%s %s %s %d\n" % (subject[0], name, action, flags))
        with open(self.log + ".details", "a") as f:
            f.write(" ".join([name, action] + ["%s=%s" % (k, details[k]) for k in sorted(details)]) + "\n")
        if self.hang_uid is not None and (uid if uid is not None else self.bus.get_unix_user(name)) == self.hang_uid:
            self.pending.append((ok, err))
            return
        ok((action == self.action, False, {}))


def main():
    address, role, ready = sys.argv[1:4]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    if role == "logind":
        keep = Manager(bus)
        name = dbus.service.BusName("org.freedesktop.login1", bus)
    else:
        keep = Authority(bus, sys.argv[4], sys.argv[5], int(sys.argv[6]) if len(sys.argv) > 6 else None)
        name = dbus.service.BusName("org.freedesktop.PolicyKit1", bus)
    open(ready, "w").write(bus.get_unique_name() + "\n")
    GLib.MainLoop().run()
    del keep, name


main()
