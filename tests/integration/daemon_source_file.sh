#!/bin/bash
# A looping file source that is truncated, removed and restored while the daemon plays it:
# truncated to 0 bytes, subscribers get a `source` "lost" event and no more labels (no
# replay of what the demuxer still held, no seek-to-end loop); while it stays lost, stats
# and hello show the latest reason (file removed: "No such file"), not the first; restored,
# subscribers get "recovered" and labels again. ~10 s.
source "$(dirname "$0")/daemon_common.bash"

clip=$T/clip.mkv
gst-launch-1.0 -q videotestsrc pattern=ball num-buffers=60 ! video/x-raw,width=64,height=64,framerate=30/1 \
    ! jpegenc ! matroskamux ! filesink location="$T/clip.orig.mkv" >/dev/null 2>&1 || fail "cannot make the test clip"
cp "$T/clip.orig.mkv" "$clip"
write_config "$T/d.yaml"
sed -i "s|^  kind: test|  kind: file\n  path: $clip\n  loop: true\n  retry_initial_ms: 100\n  retry_max_ms: 400|; /^  pattern:/d; /^  width:/d; /^  height:/d" "$T/d.yaml"
start_daemon "$T/d.yaml"
record_socket "$T/sub.jsonl"

# wait_for PYTHON-EXPR-ON-s SECONDS MESSAGE
wait_for() {
    for _ in $(seq $(($2 * 10))); do [ "$(stat_field "$1")" = True ] && return 0; sleep 0.1; done
    fail "$3"
}
wait_for "s['frames']['classified'] > 70" 10 "the clip did not loop"
: > "$clip"
wait_for "s['source']['state'] == 'lost'" 5 "truncated to 0 bytes, the source is not reported lost"
msg=$(stat_field "s['source']['message']")
case $msg in *"is empty now"*|*"no frame since it last looped"*|*"typefind"*) ;;
    *) fail "truncated file: stats source.message '$msg'";; esac
lost_at=$(stat_field "s['frames']['classified']")
sleep 1
[ "$(stat_field "s['frames']['classified']")" = "$lost_at" ] || fail "labels kept coming from a truncated file"
ok "truncated to 0 bytes: lost ($msg), no more labels"

rm "$clip"
wait_for "'No such file' in s['source']['message']" 5 "file removed while lost: stats still say '$(stat_field "s['source']['message']")'"
"$PY" - "$SOCK" <<'PY' || fail "hello does not give the latest reason"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
hello = json.loads(s.makefile('r').readline())
assert 'No such file' in hello['source']['message'], hello['source']
PY
ok "still lost, another reason: stats and hello give the latest"

cp "$T/clip.orig.mkv" "$clip"
wait_for "s['source']['state'] == 'running' and s['frames']['classified'] > $lost_at + 10" 10 "restored file: no frames"
stop_daemon
wait "$SUB" 2>/dev/null || true
"$PY" - "$T/sub.jsonl" <<'PY' || fail "events"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb')]
src = [(i, m['state']) for i, m in enumerate(ms) if m['type'] == 'source']
assert [s for _, s in src] == ['lost', 'recovered'], src
lost_i, rec_i = src[0][0], src[1][0]
# a frame captured before the loss may be published just after the lost event (the
# inference thread's result and the capture's state reach the event loop separately); no
# label may be of a frame captured while lost
between = [m for m in ms[lost_i:rec_i] if m['type'] == 'label' and m['time'] > ms[lost_i]['time']]
assert not between, 'labels of frames captured while lost: %d' % len(between)
assert any(m['type'] == 'label' for m in ms[rec_i:]), 'no label after recovered'
print('events: lost, recovered; %d labels before, none captured while lost, %d after'
      % (sum(m['type'] == 'label' for m in ms[:lost_i]), sum(m['type'] == 'label' for m in ms[rec_i:])))
PY
ok "subscriber: one lost, one recovered, no label of a frame captured in between"
