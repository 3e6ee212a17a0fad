#!/bin/bash
# The HTTP server's pictures, events and page (docs/http.md) against a daemon on the test
# source: /snapshot.jpg (JPEG magic, decodes at the documented size, overlay, scale, bad
# options 400, 503 before any frame), /stream.mjpg (multipart boundary, JPEG parts at the
# asked rate, one encoding shared by two viewers), /events (Server-Sent Events: hello first,
# every line JSON of the socket's types, labels rate-limited, every change the socket saw,
# a source event at the end of a clip), the Prometheus names that follow from the state,
# the live page (/) in headless Chromium: a label that changes, a picture, a change listed,
# a screenshot that is not blank; reloads. Chromium missing is a failure, not a skip.
source "$(dirname "$0")/daemon_common.bash"
command -v curl >/dev/null || fail "curl is not installed (make deps)"
command -v chromium >/dev/null || fail "chromium is not installed (make deps): the page must be tested in a browser"
"$PY" -c 'import PIL' 2>/dev/null || fail "python3-pil is not installed (make deps)"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }

wait_code() {   # wait_code WANT URL...: polls for up to 5 s
    local want=$1; shift
    for _ in $(seq 100); do [ "$(code "$@")" = "$want" ] && return 0; sleep 0.05; done
    fail "$* did not answer $want (last: $(code "$@"))"
}

# ---- no frame yet: 503 ----------------------------------------------------------------------
write_config "$T/lost.yaml" "http:
  listen: 127.0.0.1:$PORT"
sed -i 's|^  kind: test|  kind: v4l2\n  device: /dev/video-bn-missing|' "$T/lost.yaml"
start_daemon "$T/lost.yaml"
curl -s -D "$T/n.hdr" -o "$T/n.json" "$URL/snapshot.jpg"
grep -q '^HTTP/1.1 503' "$T/n.hdr" || { cat "$T/n.hdr"; fail "/snapshot.jpg without a frame is not 503"; }
"$PY" -c 'import json,sys; e=json.load(open(sys.argv[1])); assert e["type"]=="error" and "no frame" in e["error"], e' "$T/n.json" \
    || fail "503 body"
stop_daemon
ok "/snapshot.jpg before any frame: 503 with a JSON error"

# ---- snapshot --------------------------------------------------------------------------------
write_config "$T/on.yaml" "events:
  dir: $T/events
http:
  listen: 127.0.0.1:$PORT"
start_daemon "$T/on.yaml"
wait_code 200 "$URL/snapshot.jpg"
curl -s -D "$T/s.hdr" -o "$T/plain.jpg" "$URL/snapshot.jpg"
grep -qi '^content-type: image/jpeg' "$T/s.hdr" || fail "/snapshot.jpg Content-Type"
curl -s -o "$T/overlay.jpg" "$URL/snapshot.jpg?overlay=1"
curl -s -o "$T/s1.jpg" "$URL/snapshot.jpg?scale=1"
"$PY" - "$T" <<'PY' || fail "/snapshot.jpg pictures"
import sys
from PIL import Image, ImageStat
t = sys.argv[1]
for name in ('plain', 'overlay', 's1'):
    b = open(f'{t}/{name}.jpg', 'rb').read()
    assert b[:3] == b'\xff\xd8\xff' and b[-2:] == b'\xff\xd9', f'{name}: not a JPEG'
plain, over, s1 = (Image.open(f'{t}/{n}.jpg') for n in ('plain', 'overlay', 's1'))
for im in (plain, over, s1):
    im.load()   # decodes the whole picture
# the model input is 28x28 gray: scaled by 8 to 224 (shorter side >= 200), or as it is
assert plain.size == (224, 224) and plain.mode == 'L', (plain.size, plain.mode)
assert s1.size == (28, 28), s1.size
assert ImageStat.Stat(plain).stddev[0] > 5, 'the picture is flat'
# the overlay: white text in a darkened band at the top
band = over.crop((0, 0, 224, 38))
hist = band.histogram()
assert sum(hist[230:]) > 100, 'no text drawn in the overlay band'
PY
[ "$(code "$URL/snapshot.jpg?scale=0")" = 400 ] || fail "scale=0 not 400"
[ "$(code "$URL/snapshot.jpg?scale=17")" = 400 ] || fail "scale=17 not 400"
[ "$(code "$URL/snapshot.jpg?overlay=maybe")" = 400 ] || fail "overlay=maybe not 400"
[ "$(code -I "$URL/snapshot.jpg")" = 200 ] || fail "HEAD /snapshot.jpg"
ok "/snapshot.jpg: JPEG 224x224 gray (scale 1: 28x28), overlay text, 400 on bad options, HEAD"

# ---- MJPEG: two viewers for 3 s, one encoding per frame --------------------------------------
jpegs0=$(stat_field "s['http']['jpegs']")
curl -s -D "$T/m1.hdr" -o "$T/m1.bin" --max-time 3 "$URL/stream.mjpg" || true &
C1=$!
curl -s -o "$T/m2.bin" --max-time 3 "$URL/stream.mjpg" || true &
C2=$!
sleep 1.5
[ "$(stat_field "s['http']['streams']")" = 2 ] || fail "stats http.streams is not 2 with two viewers"
curl -s -o "$T/s.prom" "$URL/metrics"
grep -q '^basisnetd_http_streams{camera="itest"} 2$' "$T/s.prom" || fail "basisnetd_http_streams"
wait $C1 $C2 || true
jpegs1=$(stat_field "s['http']['jpegs']")
curl -s -o "$T/m10.bin" --max-time 2 "$URL/stream.mjpg?fps=10&overlay=1" || true
[ "$(code --max-time 2 "$URL/stream.mjpg?fps=31")" = 400 ] || fail "fps=31 not 400"
"$PY" - "$T" "$((jpegs1 - jpegs0))" <<'PY' || fail "/stream.mjpg"
import io, re, sys
from PIL import Image
t, encoded = sys.argv[1], int(sys.argv[2])
hdr = open(f'{t}/m1.hdr').read()
m = re.search(r'(?im)^content-type: multipart/x-mixed-replace;\s*boundary=(\S+)\r?$', hdr)
assert m, hdr
boundary = m.group(1).encode()

def parts(path):
    data = open(path, 'rb').read()
    out = []
    for chunk in data.split(b'--' + boundary + b'\r\n')[1:]:
        head, _, body = chunk.partition(b'\r\n\r\n')
        n = int(re.search(rb'(?i)content-length: (\d+)', head).group(1))
        assert re.search(rb'(?i)content-type: image/jpeg', head), head
        if len(body) < n:
            break   # the last part, cut by --max-time
        jpg = body[:n]
        assert body[n:n + 2] == b'\r\n', 'part not followed by CRLF'
        im = Image.open(io.BytesIO(jpg)); im.load()
        out.append(im)
    return out

p1, p2, p10 = parts(f'{t}/m1.bin'), parts(f'{t}/m2.bin'), parts(f'{t}/m10.bin')
# 5 fps for 3 s: about 15 parts each (the first at once), and at least 2
for p in (p1, p2):
    assert 8 <= len(p) <= 18, f'{len(p)} parts in 3 s at 5 fps'
    assert all(im.size == (224, 224) for im in p)
assert 12 <= len(p10) <= 24, f'{len(p10)} parts in 2 s at 10 fps'
# two viewers of the same picture share the encodings (each one's first part, at connect,
# is its own; a viewer still writing skips a period and may be served apart later)
assert encoded <= 0.75 * (len(p1) + len(p2)), f'{encoded} encodings for {len(p1)}+{len(p2)} parts'
print(f'parts: {len(p1)}, {len(p2)} at 5 fps, {len(p10)} at 10 fps; {encoded} encodings')
PY
ok "/stream.mjpg: multipart boundary, JPEG parts at 5 and 10 fps, two viewers share the encodings, 400 on a bad fps"

# ---- events: SSE against the socket ------------------------------------------------------------
record_socket "$T/sock.jsonl"
REC=$SUB
sleep 0.3
curl -s -N -D "$T/e.hdr" -o "$T/events.txt" --max-time 4 "$URL/events" || true
sleep 0.3
kill $REC 2>/dev/null || true; wait $REC 2>/dev/null || true
grep -qi '^content-type: text/event-stream' "$T/e.hdr" || fail "/events Content-Type"
"$PY" - "$T/events.txt" "$T/sock.jsonl" <<'PY' || fail "/events"
import json, sys
text = open(sys.argv[1]).read()
events = []
for block in text.split('\n\n'):
    data = [l[6:] for l in block.split('\n') if l.startswith('data: ')]
    if data:
        events.append(json.loads('\n'.join(data)))
    for l in block.split('\n'):
        assert l == '' or l.startswith(('data: ', 'retry: ', ':')), f'not an SSE line: {l!r}'
sock = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert events and events[0]['type'] == 'hello' and events[0]['camera'] == 'itest', events[:1]
types = {e['type'] for e in events}
assert types <= {'hello', 'label', 'change', 'source'}, types
labels = [e for e in events if e['type'] == 'label']
sock_labels = [e for e in sock if e['type'] == 'label']
# the socket gets all 30 a second; /events at most 5 a second (one per 200 ms)
assert 10 <= len(labels) <= 4 * 5 + 2, f'{len(labels)} labels in 4 s'
assert len(sock_labels) > 2 * len(labels), (len(sock_labels), len(labels))
by_seq = {e['seq']: e for e in sock_labels}
# the same messages, field for field (a label past the socket recorder's last one: the
# recorder, stopped 0.3 s after curl, lagged behind on a loaded machine)
seen = [e for e in labels if e['seq'] <= max(by_seq)]
assert len(seen) >= 8, f'only {len(seen)} of {len(labels)} /events labels within the socket recording'
for e in seen:
    assert e['seq'] in by_seq, f'label {e["seq"]} is not on the socket'
    assert by_seq[e['seq']] == e, f'label {e["seq"]} differs from the socket: {e} / {by_seq[e["seq"]]}'
# every change the socket saw while both were connected reaches /events
first, last = labels[0]['seq'], labels[-1]['seq']
sock_changes = [e for e in sock if e['type'] == 'change']
ev_changes = {e['seq']: e for e in events if e['type'] == 'change'}
assert ev_changes, 'no change event in 4 s of the ball pattern'
for c in sock_changes:
    if c['seq'] in ev_changes:
        assert ev_changes[c['seq']] == c
covered = [c for c in sock_changes if min(ev_changes) <= c['seq'] <= max(ev_changes)]
assert all(c['seq'] in ev_changes for c in covered), 'a change event missing from /events'
print(f'{len(events)} events: {len(labels)} labels (socket {len(sock_labels)}), {len(ev_changes)} changes')
PY
ok "/events: hello first, socket JSON lines, labels at most 5/s, every change"

# ---- Prometheus names that follow from the state ------------------------------------------------
curl -s "$URL/metrics" > "$T/m.prom"
"$PY" - "$T/m.prom" <<'PY' || fail "/metrics names"
import re, sys
t = open(sys.argv[1]).read()
assert re.search(r'^basisnetd_stable_label\{camera="itest",label="[^"]+"\} 1$', t, re.M), 'stable label gauge'
assert re.search(r'^basisnetd_source_state\{camera="itest",state="running"\} 1$', t, re.M)
assert re.search(r'^basisnetd_budget_mode\{camera="itest",mode="off"\} 1$', t, re.M)
assert 'basisnetd_budget_seconds' not in t, 'a budget value while the budget is off'
assert re.search(r'^basisnetd_http_jpeg_encodes_total\{camera="itest"\} [1-9]', t, re.M)
for line in t.splitlines():
    if line.startswith('#'):
        continue
    v = line.rsplit(' ', 1)[1]
    digits = re.sub(r'[-+.]|e.*', '', v).lstrip('0')
    assert len(digits) <= 15, f'float noise: {line}'
PY
curl -s "$URL/" -D "$T/p.hdr" -o "$T/page.html"
grep -qi '^content-type: text/html' "$T/p.hdr" || fail "/ Content-Type"
grep -qi "^content-security-policy: default-src 'none'" "$T/p.hdr" || fail "/ has no Content-Security-Policy"
grep -Eqi '(src|href)=["'"'"']?(https?:)?//' "$T/page.html" && fail "the page loads something from elsewhere"
grep -q '<canvas id="chart"' "$T/page.html" || fail "the page has no chart"
ok "/metrics: stable label, source state and budget mode as labels, no budget while off, no float noise; / is self-contained"

# ---- the page in a real browser -----------------------------------------------------------------
"$PY" "$ROOT/tests/integration/http_browser.py" "$URL/" "$T/page.png" 7 --saved-events > "$T/browser.json" \
    || { cat "$T/browser.json"; fail "the page in headless Chromium"; }
cat "$T/browser.json"
ok "/ in headless Chromium: the label appears and changes, the picture loads, changes listed with their saved pictures, screenshot not blank"

# ---- reload: pictures keep coming; HTTP off and on again --------------------------------------
curl -s -N -o "$T/r.txt" --max-time 4 "$URL/events" || true &
C4=$!
sleep 0.3
"$CTL" reload >/dev/null || fail "reload"
curl -s -o "$T/after.jpg" "$URL/snapshot.jpg?scale=1"
"$PY" -c 'import sys; b=open(sys.argv[1],"rb").read(); assert b[:3]==b"\xff\xd8\xff"' "$T/after.jpg" || fail "no picture after a reload"
sed -i '/^http:/,$d' "$T/on.yaml"
"$CTL" reload >/dev/null || fail "reload without http"
[ "$(code "$URL/snapshot.jpg")" = 000 ] || fail "HTTP still serving after the section was removed"
wait $C4 || true
grep -q '"type":"label"' "$T/r.txt" || fail "/events gave no label around the reload"
printf 'http:\n  listen: 127.0.0.1:%s\n' "$PORT" >> "$T/on.yaml"
"$CTL" reload >/dev/null || fail "reload with http again"
wait_code 200 "$URL/snapshot.jpg"
stop_daemon
ok "reload: pictures and events go on; HTTP removed and added again serves frames again"

# ---- a source event on /events: the end of a clip ------------------------------------------------
gst-launch-1.0 -q videotestsrc pattern=ball num-buffers=60 ! video/x-raw,width=64,height=48,framerate=30/1 \
    ! vp8enc ! matroskamux ! filesink location="$T/clip.mkv" || fail "cannot make a clip"
write_config "$T/eos.yaml" "http:
  listen: 127.0.0.1:$PORT
budget:
  mode: mean
  latency_ms: 5"
sed -i "s|^  kind: test|  kind: file\\n  path: $T/clip.mkv|; /^  pattern:/d" "$T/eos.yaml"
start_daemon "$T/eos.yaml"
curl -s -N -o "$T/eos.txt" --max-time 6 "$URL/events" || true &
C3=$!
for _ in $(seq 120); do grep -q '"type":"source","time":"[^"]*","state":"eos"' "$T/eos.txt" 2>/dev/null && break; sleep 0.05; done
grep -q '"state":"eos"' "$T/eos.txt" || fail "no source eos event on /events"
curl -s -o "$T/b.prom" "$URL/metrics"
grep -q '^basisnetd_budget_seconds{camera="itest"} 0.005$' "$T/b.prom" || fail "basisnetd_budget_seconds with budget.mode mean"
kill $C3 2>/dev/null || true; wait $C3 2>/dev/null || true
stop_daemon
ok "/events carries the source eos event; basisnetd_budget_seconds 0.005 with a 5 ms budget"
