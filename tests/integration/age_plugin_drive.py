#!/usr/bin/python3
"""age_plugin_drive.py — speak age's side of the plugin protocol (C2SP age-plugin.md) to
age-plugin-tokenseal, with grease and unknown stanzas that the real age sends only at random.

  age_plugin_drive.py PLUGIN recipient RECIPIENT          wrap a fixed file key; print the stanza args
  age_plugin_drive.py PLUGIN identity IDENTITY TYPE ARGS BODY_B64   unwrap; print FILE-KEY hex or ERROR text
  age_plugin_drive.py PLUGIN raw-identity                 phase 1 from stdin as is; print what comes back
Every phase-2 command is answered: ok to file-key, recipient-stanza, msg and error; fail to
request-secret, request-public and confirm; unsupported to anything else."""
import base64, os, subprocess, sys

# The file key recipient-v1 wraps: $AGE_DRIVE_FILE_KEY (hex) or a fixed one.
FILE_KEY = bytes.fromhex(os.environ.get("AGE_DRIVE_FILE_KEY", "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"))


def enc(t, args=(), body=b""):
    b = base64.b64encode(body).decode().rstrip("=")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    return ("-> " + " ".join([t, *args]) + "\n" + "\n".join(lines) + "\n").encode()


def read_stanza(f):
    hdr = f.readline()
    if not hdr:
        return None
    assert hdr.startswith(b"-> "), hdr
    words = hdr[3:].decode().rstrip("\n").split(" ")
    body = ""
    while True:
        line = f.readline().decode().rstrip("\n")
        body += line
        if len(line) < 64:
            break
    return words[0], words[1:], base64.b64decode(body + "=" * (-len(body) % 4))


def run(plugin, machine, phase1):
    p = subprocess.Popen([plugin, "--age-plugin=" + machine], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(phase1)
    p.stdin.flush()
    got = []
    while True:
        s = read_stanza(p.stdout)
        if s is None or s[0] == "done":
            break
        got.append(s)
        t = s[0]
        if t in ("file-key", "recipient-stanza", "msg", "error"):
            reply = enc("ok")
        elif t in ("request-secret", "request-public", "confirm"):
            reply = enc("fail")
        else:
            reply = enc("unsupported")
        p.stdin.write(reply)
        p.stdin.flush()
    p.stdin.close()
    rc = p.wait(timeout=30)
    return got, rc


GREASE = enc("grease-5a5a", ["17", "x"], bytes(70)) + enc("grease-00") + enc("extension-labels")


def main():
    plugin, mode = sys.argv[1], sys.argv[2]
    if mode == "recipient":
        got, rc = run(plugin, "recipient-v1", GREASE + enc("add-recipient", [sys.argv[3]]) + GREASE +
                      enc("wrap-file-key", [], FILE_KEY) + GREASE + enc("done"))
        for t, args, body in got:
            if t == "recipient-stanza":
                print(" ".join(args), base64.b64encode(body).decode().rstrip("="))
            else:
                print("ERROR", t, " ".join(args), body.decode(errors="replace"))
        sys.exit(rc)
    if mode == "identity":
        ident, stype, sargs, sbody = sys.argv[3], sys.argv[4], sys.argv[5].split(), sys.argv[6]
        body = base64.b64decode(sbody + "=" * (-len(sbody) % 4))
        phase1 = (enc("add-identity", [ident]) + GREASE +
                  enc("recipient-stanza", ["0", "X25519", "bm90IGEga2V5IGF0IGFsbCBidXQgMzIgYnl0ZXMhISE"], bytes(32)) +
                  enc("recipient-stanza", ["0", "unknown-type", "a", "b"], bytes(5)) + GREASE +
                  enc("recipient-stanza", ["0", stype, *sargs], body) + enc("done"))
        got, rc = run(plugin, "identity-v1", phase1)
        for t, args, body in got:
            if t == "file-key":
                print("FILE-KEY", body.hex())
            else:
                print(t.upper(), " ".join(args), body.decode(errors="replace"))
        sys.exit(rc)
    if mode == "raw-identity":
        got, rc = run(plugin, "identity-v1", sys.stdin.buffer.read())
        for t, args, body in got:
            print(t.upper(), " ".join(args), body.hex() if t == "file-key" else body.decode(errors="replace"))
        sys.exit(rc)
    sys.exit(2)


main()
