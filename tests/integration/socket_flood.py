#!/usr/bin/python3
"""socket_flood.py MODE SOCKET [args]: hostile socket clients for daemon_flood.sh.

  subscribe OUT          a well-behaved subscriber: writes "ARRIVAL_TIME LINE" for every
                         message to OUT until the daemon closes or OUT.stop exists
  unread N K             N connections each send K stats commands and never read; exits
                         (closing them) when told on stdin
  steady N RATE SECONDS  N connections each send RATE stats commands a second and read the
                         replies, for SECONDS; prints the replies received
  garbage SECONDS        one connection writes garbage lines as fast as the socket takes them
  blank SECONDS          one connection writes blank lines as fast as the socket takes them
"""
import os
import selectors
import socket
import sys
import time

mode, path = sys.argv[1], sys.argv[2]


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


if mode == 'subscribe':
    out_path = sys.argv[3]
    s = connect()
    s.settimeout(0.2)
    buf = b''
    with open(out_path, 'w') as out:
        while not os.path.exists(out_path + '.stop'):
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                break
            now = time.time()
            buf += d
            *lines, buf = buf.split(b'\n')
            for line in lines:
                out.write('%.6f %s\n' % (now, line.decode()))
            out.flush()

elif mode == 'unread':
    n, k = int(sys.argv[3]), int(sys.argv[4])
    conns = [connect() for _ in range(n)]
    line = b'{"cmd":"stats"}\n' * k
    for c in conns:
        c.setblocking(False)
    pending = {c: line for c in conns}
    # the daemon may stop reading (that is the point): send what it takes, give up after 10 s
    end = time.time() + 10
    while pending and time.time() < end:
        for c in list(pending):
            try:
                w = c.send(pending[c])
                pending[c] = pending[c][w:]
                if not pending[c]:
                    del pending[c]
            except BlockingIOError:
                pass
        time.sleep(0.01)
    print('unread: %d connections, %d with commands the daemon has not taken' %
          (n, len(pending)), flush=True)
    sys.stdin.readline()
    for c in conns:
        c.close()

elif mode == 'steady':
    n, rate, seconds = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    conns = [connect() for _ in range(n)]
    sel = selectors.DefaultSelector()
    for c in conns:
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
    replies = 0
    bufs = {c: b'' for c in conns}
    t0 = time.time()
    sent = 0
    while time.time() - t0 < seconds:
        due = int((time.time() - t0) * rate)
        if due > sent:
            for c in conns:
                try:
                    c.send(b'{"cmd":"stats"}\n' * (due - sent))
                except BlockingIOError:
                    pass
            sent = due
        for key, _ in sel.select(timeout=0.002):
            c = key.fileobj
            try:
                d = c.recv(1 << 20)
            except BlockingIOError:
                continue
            if not d:
                sys.exit('steady: the daemon closed a connection')
            bufs[c] += d
            *lines, bufs[c] = bufs[c].split(b'\n')
            replies += sum(1 for line in lines if line.startswith(b'{"type":"reply","cmd":"stats"'))
    print('steady: %d connections, %d stats replies in %.1f s' % (n, replies, seconds), flush=True)
    for c in conns:
        c.close()

elif mode in ('garbage', 'blank'):
    seconds = float(sys.argv[3])
    c = connect()
    c.setblocking(False)
    chunk = (b'\n' if mode == 'blank' else b'not a command at all\n') * 4096
    sent = 0
    t0 = time.time()
    sel = selectors.DefaultSelector()
    sel.register(c, selectors.EVENT_WRITE | selectors.EVENT_READ)
    while time.time() - t0 < seconds:
        for key, ev in sel.select(timeout=0.05):
            if ev & selectors.EVENT_READ:
                try:
                    if not c.recv(1 << 20):
                        sys.exit('%s: the daemon closed the connection' % mode)
                except BlockingIOError:
                    pass
            if ev & selectors.EVENT_WRITE:
                try:
                    sent += c.send(chunk)
                except BlockingIOError:
                    pass
    print('%s: %d bytes taken in %.1f s' % (mode, sent, seconds), flush=True)
    c.close()
else:
    sys.exit('unknown mode ' + mode)
