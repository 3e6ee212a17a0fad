#!/bin/bash
# basisnetctl against docs/protocol.md: a daemon speaking an unknown protocol version is
# refused (exit 6); --label is checked against hello.labels (case-sensitive, did-you-mean,
# exit 2); --format tsv gives one tab-separated line per message; subscribe shows the
# source's state when it is not running; --reconnect survives a daemon restart; an unknown
# command's error carries cmd; --version in every program.
source "$(dirname "$0")/daemon_common.bash"

# 1. A "daemon" that says hello with v 2.
"$PY" - "$T/v2.sock" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
while True:
    c, _ = s.accept()
    c.sendall(b'{"type":"hello","v":2,"daemon":"basisnetd","labels":["a"]}\n')
    c.close()
PY
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do [ -S "$T/v2.sock" ] && break; sleep 0.05; done
rc=0; "$CTL" --socket "$T/v2.sock" ping 2>"$T/err" || rc=$?
[ "$rc" -eq 6 ] || fail "v2 hello: exit $rc, want 6"
grep -q 'speaks protocol v2; this basisnetctl (.*) knows only v1' "$T/err" || fail "v2 message: $(cat "$T/err")"
rc=0; "$CTL" --socket "$T/v2.sock" subscribe --count 1 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 6 ] || fail "v2 hello (subscribe): exit $rc"
kill $FAKE; wait $FAKE 2>/dev/null || true
ok "unknown protocol version refused: $(cat "$T/err")"

# 2. Labels checked against the model's.
write_config "$T/d.yaml"
start_daemon "$T/d.yaml"
first=$("$PY" - "$SOCK" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
hello = json.loads(s.makefile('rb').readline())
print([l for l in hello['labels'] if l != l.lower()][0])
PY
) || fail "the model has no label with an upper-case letter to test with"
lower=$(tr '[:upper:]' '[:lower:]' <<<"$first")
rc=0; "$CTL" subscribe --count 1 --label "$lower" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "--label $lower: exit $rc"
grep -qF -- "--label '$lower' is not a label of model" "$T/err" || fail "label message: $(cat "$T/err")"
grep -qF -- "did you mean '$first'?" "$T/err" || fail "no did-you-mean: $(cat "$T/err")"
rc=0; "$CTL" subscribe --count 1 --label "Zebra-crossing" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'its labels:' "$T/err" && ! grep -q 'did you mean' "$T/err" \
    || fail "unknown label: exit $rc: $(cat "$T/err")"
# accepted: it streams (exits 0 after a match, or is still waiting when timeout ends it)
rc=0; timeout 3 "$CTL" subscribe --count 1 --label "$first" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || fail "exact label '$first' refused: exit $rc: $(cat "$T/err")"
ok "labels: '$lower' refused with did-you-mean '$first'; unknown one lists the labels"

# 3. TSV: one line per message, 9 fields for label lines.
"$CTL" subscribe --count 3 --format tsv > "$T/tsv" || fail "tsv"
"$PY" - "$T/tsv" <<'PY' || fail "tsv format: $(cat "$T/tsv")"
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
labels = [r for r in rows if r[0] == 'label']
assert len(labels) == 3 and all(len(r) == 9 for r in labels), rows
for r in labels:
    int(r[2]); int(r[4]); float(r[5]); float(r[7]); int(r[8])
    assert r[6] in ('light', 'specialist'), r
PY
ok "tsv: $(head -1 "$T/tsv" | tr '\t' '|')"

# 4. An unknown command's error carries cmd.
"$PY" - "$SOCK" <<'PY' || fail "error without cmd"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rwb')
f.readline()
f.write(b'{"cmd":"launch","id":3}\n'); f.flush()
while True:
    m = json.loads(f.readline())
    if m['type'] == 'error':
        break
assert m.get('cmd') == 'launch' and m.get('id') == 3 and 'unknown command' in m['error'], m
PY
ok "unknown command: error carries cmd and id"

# 5. --reconnect across a daemon restart; the source state is shown at connect.
"$CTL" subscribe --reconnect --format tsv > "$T/re.tsv" 2>"$T/re.err" &
RS=$!
trap 'kill $RS 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ "$(grep -c '^label' "$T/re.tsv")" -ge 3 ] && break; sleep 0.05; done
stop_daemon
sed -i 's|^  kind: test|  kind: v4l2\n  device: /dev/video-bn-missing|; /^  pattern:/d' "$T/d.yaml"
start_daemon "$T/d.yaml"
for _ in $(seq 100); do grep -q '^source.*lost' "$T/re.tsv" && break; sleep 0.05; done
kill $RS; wait $RS 2>/dev/null || true
grep -q 'reconnecting (--reconnect)' "$T/re.err" || fail "no reconnect notice: $(cat "$T/re.err")"
grep -q 'reconnected' "$T/re.err" || fail "did not reconnect: $(cat "$T/re.err")"
grep -P -q '^source\t[^\t]+\tlost\t.*video-bn-missing' "$T/re.tsv" \
    || fail "source state not shown after reconnect: $(tail -3 "$T/re.tsv")"
stop_daemon
ok "--reconnect: survived a restart; the new daemon's lost source shown at connect"

# 6. --version everywhere.
for p in basisnetd basisnetctl basisnet; do
    v=$("$ROOT/$BUILD/$p" --version) || fail "$p --version"
    grep -Eq "^$p [0-9]+\.[0-9]+\.[0-9]+" <<<"$v" || fail "$p --version: '$v'"
done
ok "--version: $("$CTL" --version)"
