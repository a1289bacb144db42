"""softfido_hid.py — python-fido2 transport for softfido: CTAP-HID reports over a Unix SOCK_SEQPACKET socket."""
import select
import socket

from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_LEN = 64


class SeqpacketConnection(CtapHidConnection):
    """One message on the socket is one 64-byte HID report (no report id)."""

    def __init__(self, path, timeout=35.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self.timeout = timeout

    def write_packet(self, data):
        if len(data) != REPORT_LEN:
            raise ValueError("a report is %d bytes, not %d" % (REPORT_LEN, len(data)))
        self.sock.send(data)

    def read_packet(self):
        r, _, _ = select.select([self.sock], [], [], self.timeout)
        if not r:
            raise OSError("softfido did not answer in %.0f s" % self.timeout)
        data = self.sock.recv(REPORT_LEN + 1)
        if len(data) != REPORT_LEN:
            raise OSError("bad report of %d bytes" % len(data))
        return data

    def close(self):
        self.sock.close()


def open_device(path):
    """A python-fido2 CtapHidDevice on softfido's socket (runs CTAPHID_INIT)."""
    desc = HidDescriptor(path, 0x1209, 0x5F1D, REPORT_LEN, REPORT_LEN)
    return CtapHidDevice(desc, SeqpacketConnection(path))


def control(path, line):
    """Sends one line on softfido's control socket; returns the answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall((line + "\n").encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    return data.decode()
