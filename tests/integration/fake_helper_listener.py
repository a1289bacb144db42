# fake_helper_listener.py SOCKET RECORD — a listener that greets like a token helper (one byte, "H") and
# records every byte the daemon then sends (RECORD) and every connection (RECORD.connections): the tests
# start it as a uid the daemon must refuse, and check that nothing (no PIN, no password) ever arrived.
import os, socket, sys
path, record = sys.argv[1], sys.argv[2]
os.umask(0)   # the daemon (root, no capability) must be able to connect to a socket of another uid
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
while True:
    c, _ = s.accept()
    with open(record + ".connections", "a") as f:
        f.write("1\n")
    try:
        c.sendall(b"H")
        c.settimeout(10)
        while True:
            b = c.recv(65536)
            if not b:
                break
            with open(record, "ab") as f:
                f.write(b)
    except OSError:
        pass
    c.close()
