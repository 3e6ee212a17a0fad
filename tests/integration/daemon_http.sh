#!/bin/bash
# The HTTP server (docs/http.md) with curl against a daemon on the test source: off by
# default (no listening socket), a bad http.listen fails --check-config at FILE:LINE:COL,
# /metrics is valid Prometheus text (parsed here against the exposition format) and the same
# text as `basisnetctl stats --prometheus`, /api/state, /healthz (200, and 503 at the end of
# a clip and with the camera missing), 404/405/413, max_clients, reload (new address bound
# before the old closes, a busy address rejected with the old one kept, section removed),
# a Unix socket path. The pictures, /events and the page: daemon_http_media.sh.
source "$(dirname "$0")/daemon_common.bash"
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }   # HTTP status, 000: no answer

# Listening TCP sockets the daemon holds (inodes of its fds that /proc/net/tcp* lists as LISTEN).
daemon_tcp_listeners() {
    "$PY" - "$DPID" <<'PY'
import os, sys
pid = sys.argv[1]
mine = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        t = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if t.startswith("socket:["):
        mine.add(t[8:-1])
n = 0
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(f).read().splitlines()[1:]:
        p = line.split()
        if p[3] == "0A" and p[9] in mine:
            n += 1
print(n)
PY
}

wait_code() {   # wait_code WANT URL...: polls for up to 5 s
    local want=$1; shift
    for _ in $(seq 100); do [ "$(code "$@")" = "$want" ] && return 0; sleep 0.05; done
    fail "$* did not answer $want (last: $(code "$@"))"
}

# ---- off by default ----------------------------------------------------------------------
write_config "$T/off.yaml"
start_daemon "$T/off.yaml"
[ "$(daemon_tcp_listeners)" = 0 ] || fail "HTTP off, yet the daemon listens on TCP"
[ "$(code "$URL/healthz")" = 000 ] || fail "something answers on $PORT with HTTP off"
[ "$(stat_field "'http' in s")" = False ] || fail "stats has an http member with HTTP off"
"$CTL" stats --prometheus | grep -q basisnetd_http_ && fail "http metrics with HTTP off"
stop_daemon
ok "HTTP off: no listening socket, no http stats"

# ---- --check-config ------------------------------------------------------------------------
write_config "$T/bad.yaml" "http:
  listen: 127.0.0.1:0"
rc=0; "$BND" --check-config "$T/bad.yaml" >"$T/check.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-config exit $rc on a bad http.listen"
grep -qF "$T/bad.yaml:17:11: key 'http.listen': expected a port from 1 to 65535 after the address, got \"127.0.0.1:0\"" "$T/check.out" \
    || { cat "$T/check.out"; fail "bad http.listen message"; }
write_config "$T/remote.yaml" "http:
  listen: 0.0.0.0:$PORT"
rc=0; "$BND" --check-config "$T/remote.yaml" >"$T/check.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-config exit $rc on a non-loopback address"
grep -qF "$T/remote.yaml:17:3: key 'http.listen': 0.0.0.0:$PORT is not a loopback address" "$T/check.out" \
    && grep -qF "http.allow_remote: true" "$T/check.out" || { cat "$T/check.out"; fail "non-loopback message"; }
ok "--check-config: bad http.listen and a non-loopback address at FILE:LINE:COL"

# ---- the endpoints -----------------------------------------------------------------------
write_config "$T/on.yaml" "http:
  listen: 127.0.0.1:$PORT
  max_clients: 4"
start_daemon "$T/on.yaml"
grep -q "HTTP on 127.0.0.1:$PORT" "$T/daemon.log" || fail "the log does not name the HTTP address"
[ "$(daemon_tcp_listeners)" = 1 ] || fail "expected one listening TCP socket"
wait_code 200 "$URL/healthz"
[ "$(curl -s "$URL/healthz")" = ok ] || fail "/healthz body"

curl -s -D "$T/m.hdr" -o "$T/m.prom" "$URL/metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/m.hdr" || { cat "$T/m.hdr"; fail "/metrics Content-Type"; }
"$CTL" stats --prometheus > "$T/ctl.prom"
# A parser for the text exposition format (version 0.0.4), strict about what this daemon
# emits: every sample `name{labels} value`, each family with # TYPE before its samples,
# basisnetd_ names, counters ending in _total, values without float noise, cumulative
# histogram buckets ending at +Inf with the _count; and the same lines as basisnetctl's,
# values aside.
"$PY" - "$T/m.prom" "$T/ctl.prom" <<'PY' || fail "/metrics is not valid Prometheus text"
import math, re, sys
NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(rf'^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)$')

def parse(path):
    text = open(path).read()
    assert text.endswith('\n'), 'no final newline'
    types, helps, samples = {}, {}, []
    for n, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            assert name not in helps, f'{n}: second HELP for {name}'
            helps[name] = True
        elif line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ')
            assert kind in ('counter', 'gauge', 'histogram', 'summary', 'untyped'), line
            assert name not in types, f'{n}: second TYPE for {name}'
            types[name] = kind
        elif line.startswith('#') or not line:
            raise AssertionError(f'{n}: unexpected line {line!r}')
        else:
            m = SAMPLE.match(line)
            assert m, f'{n}: not a sample line: {line!r}'
            name, labels, value = m.group(1), m.group(2) or '', m.group(3)
            v = float(value)  # accepts +Inf, NaN
            # no float noise: at most 15 significant digits (0.0472, not 0.047199999999999999)
            assert len(re.sub(r'[-+.]|e.*', '', value).lstrip('0')) <= 15, f'{n}: float noise: {line!r}'
            family = name
            for suffix in ('_bucket', '_sum', '_count'):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
                    family = name[:-len(suffix)]
            assert family in types, f'{n}: {name} has no # TYPE before it'
            assert re.fullmatch(r'basisnetd_[a-z0-9_]+', family), f'{n}: name {family}'
            if types[family] == 'counter':
                assert family.endswith('_total'), f'{n}: counter {family} without _total'
                assert v >= 0 and not math.isnan(v), f'{n}: counter value {v}'
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
            samples.append((name, labels, v))
    # histograms: per label set (minus le), cumulative buckets, +Inf last and == _count
    for fam in [f for f, k in types.items() if k == 'histogram']:
        series = {}
        for name, labels, v in samples:
            if name.startswith(fam + '_'):
                key = tuple(sorted((k, x) for k, x in labels.items() if k != 'le'))
                series.setdefault(key, {'b': [], 'count': None})
                if name == fam + '_bucket':
                    series[key]['b'].append((labels['le'], v))
                elif name == fam + '_count':
                    series[key]['count'] = v
        assert series, f'histogram {fam} has no series'
        for key, s in series.items():
            b = s['b']
            assert b and b[-1][0] == '+Inf', f'{fam} {key}: last bucket is not +Inf'
            les = [float(le) for le, _ in b]
            assert les == sorted(les), f'{fam} {key}: le not increasing'
            counts = [v for _, v in b]
            assert counts == sorted(counts), f'{fam} {key}: buckets not cumulative'
            assert counts[-1] == s['count'], f'{fam} {key}: +Inf bucket != _count'
    return types, samples

types, samples = parse(sys.argv[1])
got = {name: v for name, labels, v in samples if not labels.get('le')}
assert got.get('basisnetd_frames_classified_total', 0) > 0, 'no frames classified'
assert got.get('basisnetd_http_requests_total') is not None, 'no http metrics'
assert types['basisnetd_latency_seconds'] == 'histogram'
assert all(l.get('camera') == 'itest' for _, l, _ in samples), 'camera label'
# The same text as `basisnetctl stats --prometheus`, values aside (the stable label, and the
# source's state on a slow start, may change between the two reads).
shape = lambda p: [re.sub(r'\b(label|state)="[^"]*"', r'\1=""', re.sub(r' \S+$', '', l))
                   if not l.startswith('#') else l for l in open(p).read().splitlines()]
assert shape(sys.argv[1]) == shape(sys.argv[2]), 'differs from basisnetctl stats --prometheus'
print(f'{len(samples)} samples, {len(types)} families')
PY
ok "/metrics: Prometheus text, Content-Type, same as basisnetctl stats --prometheus"

curl -s -D "$T/s.hdr" -o "$T/state.json" "$URL/api/state"
grep -qi '^content-type: application/json' "$T/s.hdr" || fail "/api/state Content-Type"
"$PY" - "$T/state.json" "$SOCK" <<'PY' || fail "/api/state"
import json, socket, sys
st = json.load(open(sys.argv[1]))
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[2])
hello = json.loads(s.makefile().readline())
assert st['type'] == 'state' and hello['type'] == 'hello'
for k in ('camera', 'model', 'labels', 'input', 'version', 'budget'):
    assert st[k] == hello[k], k
assert st['camera'] == 'itest' and len(st['labels']) >= 2, st['labels']
assert st['source']['state'] == 'running'
assert st['stats']['camera'] == 'itest' and st['stats']['frames']['classified'] > 0
assert st['stats']['http']['listen'].startswith('127.0.0.1:')
PY
ok "/api/state: hello fields (camera, labels) and stats"

[ "$(code -I "$URL/healthz")" = 200 ] || fail "HEAD /healthz"
curl -s -D "$T/e.hdr" -o "$T/e.json" "$URL/nope"
grep -q '^HTTP/1.1 404' "$T/e.hdr" || fail "unknown path not 404"
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); assert e["type"]=="error" and "/nope" in e["error"]' "$T/e.json" \
    || fail "404 body is not a JSON error"
[ "$(code "$URL/metrics/")" = 404 ] || fail "/metrics/ is not an endpoint"
curl -s -D "$T/p.hdr" -o /dev/null -X POST -d x=1 "$URL/metrics"
grep -q '^HTTP/1.1 405' "$T/p.hdr" && grep -qi '^allow: GET, HEAD' "$T/p.hdr" || { cat "$T/p.hdr"; fail "POST not 405 with Allow"; }
[ "$(code -X DELETE "$URL/api/state")" = 405 ] || fail "DELETE not 405"
head -c 100000 /dev/zero > "$T/big"
[ "$(code -X GET --data-binary @"$T/big" "$URL/metrics")" = 413 ] || fail "a 100 kB body not 413"
[ "$(code -X GET --data-binary 'small' "$URL/healthz")" = 200 ] || fail "a small body refused"
ok "HEAD, 404 JSON, 405 with Allow, 413 over 1024 bytes"

# max_clients: 4 idle connections take every slot; the fifth gets 503 and is closed.
"$PY" - "$PORT" <<'PY' || fail "max_clients"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(('127.0.0.1', port)) for _ in range(4)]
time.sleep(0.3)
x = socket.create_connection(('127.0.0.1', port)); x.settimeout(3)
r = x.recv(4096)
assert r.startswith(b'HTTP/1.1 503'), r
for s in held:
    s.close()
for _ in range(50):   # the slots come back once the daemon sees the closes
    y = socket.create_connection(('127.0.0.1', port)); y.settimeout(3)
    y.sendall(b'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n')
    if y.recv(4096).startswith(b'HTTP/1.1 200'):
        break
    time.sleep(0.05)
else:
    raise SystemExit('slots not released')
PY
[ "$(stat_field "s['http']['rejected'] >= 1 and s['http']['requests'] > 5")" = True ] || fail "http stats"
ok "max_clients 4: the fifth connection gets 503, slots come back"

# Request heads checked before SoupServer takes the connection (daemon/http_intake.c):
# libsoup 3.2 leaks the path of a request whose Content-Length is not a number or whose
# Transfer-Encoding it does not know; such heads get the daemon's own JSON error, a head over
# 32 KiB 431, and a head sent in pieces is still served. (The leak itself: the last section.)
# ask(port, parts..., pause=S): one connection, the parts sent S apart, everything read back
cat > "$T/http_ask.py" <<'PY'
import socket, time
def ask(port, *parts, pause=0.0):
    s = socket.create_connection(('127.0.0.1', port)); s.settimeout(5)
    for p in parts:
        s.sendall(p); time.sleep(pause)
    out = b''
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    s.close()
    return out
PY
"$PY" - "$PORT" "$T" <<'PY' || fail "request heads checked before SoupServer"
import functools, sys
sys.path.insert(0, sys.argv[2])
from http_ask import ask
ask = functools.partial(ask, int(sys.argv[1]))
r = ask(b'GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n')
assert r.startswith(b'HTTP/1.1 400') and b"Content-Length '12x' is not a number" in r, r
r = ask(b'GET /metrics HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n')
assert r.startswith(b'HTTP/1.1 501') and b"Transfer-Encoding 'gzip' is not supported" in r, r
r = ask(b'GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ' + b'a' * 40000 + b'\r\n\r\n')
assert r.startswith(b'HTTP/1.1 431') and b'longer than 32768 bytes' in r, r
r = ask(b'GET /healthz HTTP/1.1\r\nHo', b'st: t\r\n', b'\r\n', pause=0.15)
assert r.startswith(b'HTTP/1.1 200') and r.endswith(b'\r\n\r\nok\n'), r
PY
ok "bad Content-Length 400, unknown Transfer-Encoding 501, head over 32 KiB 431 (JSON errors), a head in pieces served"

# ---- reload --------------------------------------------------------------------------------
PORT2=$(free_port)
sed -i "s|listen: 127.0.0.1:$PORT|listen: 127.0.0.1:$PORT2|" "$T/on.yaml"
"$CTL" reload >/dev/null || fail "reload to a new port"
[ "$(code "http://127.0.0.1:$PORT2/healthz")" = 200 ] || fail "new port not serving after reload"
[ "$(code "$URL/healthz")" = 000 ] || fail "old port still serving after reload"
# A busy address: the reload fails, naming the key, and the running listener stays.
"$PY" -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)' > "$T/busy.out" &
BUSY=$!
trap 'kill $BUSY 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -s "$T/busy.out" ] && break; sleep 0.05; done
PORT3=$(cat "$T/busy.out")
sed -i "s|listen: 127.0.0.1:$PORT2|listen: 127.0.0.1:$PORT3|" "$T/on.yaml"
rc=0; "$CTL" reload >"$T/reload.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "reload onto a busy port: exit $rc"
grep -qF "$T/on.yaml:17:3: key 'http.listen': http.listen 127.0.0.1:$PORT3: cannot bind: Address already in use" "$T/reload.out" \
    || { cat "$T/reload.out"; fail "busy-port reload message"; }
[ "$(stat_field "s['reload']['failed']")" = 1 ] || fail "failed reload not counted"
[ "$(code "http://127.0.0.1:$PORT2/healthz")" = 200 ] || fail "old listener gone after a failed reload"
kill $BUSY; wait $BUSY 2>/dev/null || true
# The section removed: the listener closes.
sed -i '/^http:/,$d' "$T/on.yaml"
"$CTL" reload >/dev/null || fail "reload without http"
[ "$(code "http://127.0.0.1:$PORT2/healthz")" = 000 ] || fail "HTTP still serving after the section was removed"
[ "$(daemon_tcp_listeners)" = 0 ] || fail "a TCP listener left after http was removed"
stop_daemon
ok "reload: new port, busy port rejected with the old kept, section removed"

# ---- Unix socket; /healthz 503 at the end of a clip -----------------------------------------
write_config "$T/eos.yaml" "http:
  listen: $T/http.sock"
gst-launch-1.0 -q videotestsrc num-buffers=15 ! video/x-raw,width=64,height=48,framerate=30/1 \
    ! vp8enc ! matroskamux ! filesink location="$T/short.mkv" || fail "cannot make a short clip"
sed -i "s|^  kind: test|  kind: file\\n  path: $T/short.mkv|; /^  pattern:/d" "$T/eos.yaml"
start_daemon "$T/eos.yaml"
[ "$(stat -c %a "$T/http.sock")" = 660 ] || fail "Unix socket mode $(stat -c %a "$T/http.sock")"
# the first 503 may still be 'starting' on a slow machine: until the clip has ended
for _ in $(seq 100); do
    body=$(curl -s --unix-socket "$T/http.sock" http://localhost/healthz)
    grep -q "source ended" <<<"$body" && break
    sleep 0.1
done
grep -q "source ended" <<<"$body" || fail "503 reason at EOS: $body"
[ "$(code --unix-socket "$T/http.sock" http://localhost/metrics)" = 200 ] || fail "/metrics on the Unix socket"
# HTTP/1.0 without Host: libsoup 3.2 would take the Unix socket's address for an IP one
# (GLib-CRITICAL lines on stderr for every such request); the daemon answers 400 first.
"$PY" - "$T/http.sock" <<'PY' || fail "HTTP/1.0 without Host on the Unix socket"
import socket, sys
for req in (b'GET /healthz HTTP/1.0\r\n\r\n', b'GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n'):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
    s.sendall(req)
    out = b''
    while (b := s.recv(4096)):
        out += b
    want = b'HTTP/1.0 503' if b'Host' in req else b'HTTP/1.1 400'
    assert out.startswith(want), (req, out)
    assert b'Host' in req or b'needs a Host header' in out, out
PY
grep -q CRITICAL "$T/daemon.log" && { grep CRITICAL "$T/daemon.log" | head -3; fail "GLib-CRITICAL in the log"; }
stop_daemon
[ ! -e "$T/http.sock" ] || fail "Unix socket left after stop"
ok "Unix socket (0660, removed at stop); /healthz 503 'source ended' at EOS; HTTP/1.0 without Host 400"

# /healthz 503 while the camera is missing.
write_config "$T/lost.yaml" "http:
  listen: 127.0.0.1:$PORT2"
sed -i 's|^  kind: test|  kind: v4l2\n  device: /dev/video-bn-missing|' "$T/lost.yaml"
start_daemon "$T/lost.yaml"
for _ in $(seq 100); do
    body=$(curl -s "http://127.0.0.1:$PORT2/healthz")
    grep -q "^source lost: " <<<"$body" && break
    sleep 0.1
done
grep -q "^source lost: " <<<"$body" || fail "503 reason with the camera missing: $body"
stop_daemon
ok "/healthz 503 'source lost' with the camera missing"

# ---- libsoup's leak of refused requests' paths, and its interned methods ---------------------
# 1,500 requests with 16 KiB paths and a Content-Length that is not a number (24 MB of paths
# libsoup 3.2 would lose), then 1,500 with distinct 16 KiB methods (24 MB libsoup would
# intern for good), leave the daemon's RSS within 6 MB each. Under ASan its quarantine of
# freed memory would grow RSS by itself: off for this daemon.
write_config "$T/leak.yaml" "http:
  listen: 127.0.0.1:$PORT"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" start_daemon "$T/leak.yaml"
wait_code 200 "$URL/healthz"
"$PY" - "$PORT" "$DPID" "$T" <<'PY' || fail "RSS after refused requests"
import sys
port, pid = int(sys.argv[1]), sys.argv[2]
sys.path.insert(0, sys.argv[3])
from http_ask import ask as ask_port
bad = b'GET /' + b'p' * 16384 + b' HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n'
def ask():
    return ask_port(port, bad)
def rss_kb():
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
for _ in range(200):
    ask()
before = rss_kb()
for _ in range(1500):
    assert ask().startswith(b'HTTP/1.1 400')
grew = rss_kb() - before
assert grew < 6 * 1024, f'RSS grew {grew} kB over 1500 refused requests'
print(f'RSS grew {grew} kB over 1500 refused requests', file=sys.stderr)
before = rss_kb()
for i in range(1500):
    m = b'M%05d' % i + b'X' * 16378
    r = ask_port(port, m + b' /healthz HTTP/1.1\r\nHost: t\r\n\r\n')
    assert r.startswith(b'HTTP/1.1 405') and b'\r\nAllow: GET, HEAD\r\n' in r, r[:200]
grew = rss_kb() - before
assert grew < 6 * 1024, f'RSS grew {grew} kB over 1500 requests with distinct methods'
print(f'RSS grew {grew} kB over 1500 requests with distinct 16 KiB methods', file=sys.stderr)
PY
stop_daemon
ok "1,500 refused requests with 16 KiB paths, 1,500 with distinct 16 KiB methods (405): RSS within 6 MB"
