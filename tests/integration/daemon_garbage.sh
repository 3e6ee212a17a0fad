#!/bin/bash
# Hostile clients never crash basisnetd or disturb others: random bytes, invalid UTF-8,
# deeply nested JSON, lines over publish.max_line, half-open connections, connect-and-vanish
# storms, more clients than publish.max_clients.
source "$(dirname "$0")/daemon_common.bash"
MAX_CLIENTS=40 write_config "$T/d.yaml"
start_daemon "$T/d.yaml"

"$PY" - "$SOCK" <<'PY' || fail "garbage"
import json, os, random, socket, sys, time
path = sys.argv[1]
random.seed(7)
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(5); return s
def lines(s, n):
    out, buf = [], b''
    while len(out) < n:
        d = s.recv(65536)
        if not d: break
        buf += d
        *ls, buf = buf.split(b'\n')
        out += [json.loads(l) for l in ls]
    return out
def reply_to(s):
    buf = b''
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return None     # closed with our data unread: the oversized-line case
        if not d: return None
        buf += d
        *ls, buf = buf.split(b'\n')
        for l in ls:
            m = json.loads(l)
            if m['type'] in ('reply', 'error'): return m

watcher = conn()   # a well-behaved subscriber through all of it
# 1. random bytes, newline-terminated: each line gets an error reply, connection kept
s = conn()
for _ in range(200):
    s.sendall(bytes(random.randrange(256) for _ in range(random.randrange(1, 300))).replace(b'\n', b' ') + b'\n')
s.sendall(b'{"cmd":"ping","id":"after"}\n')
errors = 0
buf = b''
while True:
    d = s.recv(65536); assert d, 'closed on random bytes'
    buf += d
    *ls, buf = buf.split(b'\n')
    done = False
    for l in ls:
        m = json.loads(l)
        errors += m['type'] == 'error'
        if m.get('id') == 'after': done = True
    if done: break
assert errors >= 190, errors
print('random lines: %d error replies, connection kept' % errors)
# 2. invalid UTF-8, NUL bytes, deep nesting, wrong types
for bad in [b'{"cmd":"\xff\xfe"}', b'{"cmd":"ping\x00"}', b'[' * 100000 + b']' * 100000,
            b'{"cmd":"subscribe","labels":' + b'[' * 5000 + b']' * 5000 + b'}',
            b'{"cmd":"set","budget_ms":1e999}', b'{"cmd":{"a":1}}']:
    c = conn()
    try:
        c.sendall(bad + b'\n')
    except (BrokenPipeError, ConnectionResetError):
        pass
    m = reply_to(c)
    # a line over max_line (4096) disconnects; anything shorter is an error reply
    if len(bad) > 4096:
        assert m is None, m
    else:
        assert m and m['type'] == 'error', (bad[:40], m)
    c.close()
print('malformed commands: error replies; oversized lines disconnected')
# 3. a huge line without newline: disconnected
c = conn()
try:
    c.sendall(b'x' * 1000000)
except (BrokenPipeError, ConnectionResetError):
    pass
c.close()     # the disconnect is counted in stats (line_disconnects, checked below)
# 4. half-open: shut down writing, keep reading
h = conn(); h.sendall(b'{"cmd":"ping"}'); h.shutdown(socket.SHUT_WR)
assert reply_to(h)['type'] == 'reply'
# 5. connect-and-vanish storm, and clients that close right after a command
for i in range(300):
    c = socket.socket(socket.AF_UNIX); c.connect(path)
    if i % 3 == 0: c.sendall(b'{"cmd":"stats"}\n')
    if i % 5 == 0: c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    c.close()
# 6. more than max_clients: the extra ones get an error and are closed
many = []
refused = 0
for _ in range(60):
    c = conn(); many.append(c)
time.sleep(0.5)
for c in many:
    c.settimeout(0.5)
    try:
        d = c.recv(4096)
    except socket.timeout:
        continue
    if b'too many clients' in d: refused += 1
assert refused > 0, 'max_clients not enforced'
for c in many: c.close()
print('max_clients: %d refused' % refused)
# the watcher kept receiving labels with consecutive seqs, losing nothing
ms = [m for m in lines(watcher, 60) if m['type'] == 'label']
seq = [m['seq'] for m in ms]
assert len(seq) > 40 and all(b > a for a, b in zip(seq, seq[1:])), 'watcher seq order'
p = conn(); p.sendall(b'{"cmd":"ping"}\n'); assert reply_to(p)['ok']
print('daemon alive, watcher got %d labels' % len(ms))
PY
ok "garbage survived"
kill -0 "$DPID" || fail "daemon died"
n=$(stat_field "s['clients']['line_disconnects']")
[ "$n" -ge 2 ] || fail "line_disconnects $n"
stop_daemon
ok "clean stop in $STOP_MS ms"
