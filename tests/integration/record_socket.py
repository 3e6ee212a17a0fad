#!/usr/bin/python3
"""record_socket.py SOCKET OUT: waits (up to 20 s, polling every 5 ms) for a Unix socket to
accept, then appends everything the daemon sends to OUT (flushed as it arrives) until the
daemon closes the connection. OUT.ready is created at start, so a caller can tell the
recorder is polling. Used by the integration tests and bench/scene/flow.sh."""
import socket
import sys
import time

sock_path, out_path = sys.argv[1], sys.argv[2]
open(out_path + ".ready", "w").close()
s = None
for _ in range(4000):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        break
    except OSError:
        s.close()
        s = None
        time.sleep(0.005)
if s is None:
    sys.exit("record_socket: %s did not accept within 20 s" % sock_path)
with open(out_path, "wb") as out:
    while True:
        d = s.recv(65536)
        if not d:
            break
        out.write(d)
        out.flush()
