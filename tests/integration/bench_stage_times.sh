#!/bin/bash
# bench/budget/analyze.py --stage-times, the budget rule of bench/budget/run.sh: the median
# in-daemon light time over every frame and the median synthesis + specialist time over the
# frames the specialist answered, on hand-made label messages with known medians; a run in
# which the specialist never ran is refused with a message naming the file.
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d /tmp/bn-stage-times.XXXXXX)
trap 'rm -rf "$T"' EXIT
failed=0
msg() {   # stage light synth specialist
    printf '{"type":"label","seq":1,"pts_ns":0,"label":"Coat","class":4,"score":0.9,"stage":"%s","threshold":1.0,"latency_ms":{"light":%s,"synth":%s,"specialist":%s,"total":0,"capture_to_publish":0},"dropped_frames":0}\n' "$@"
}
{
    echo '{"type":"hello","protocol":1}'
    msg light 0.10 0 0
    msg specialist 0.30 0.10 0.50     # synth + specialist 0.60
    msg specialist 0.20 0.20 0.90     # 1.10
    msg light 0.40 0 0
    msg specialist 0.50 0.10 1.90     # 2.00
} > "$T/run.jsonl"
# light: 0.10 0.20 0.30 0.40 0.50 -> 0.300; specialist frames: 0.60 1.10 2.00 -> 1.100
out=$("$PY" bench/budget/analyze.py --stage-times "$T/run.jsonl" 2>&1)
if [ "$out" = "0.300 1.100" ]; then echo "ok:   medians of an odd count: $out"
else echo "FAIL: expected '0.300 1.100', got '$out'"; failed=1; fi

msg specialist 0.60 0.10 0.10 >> "$T/run.jsonl"     # light 0.30 0.40 -> 0.350; spec 0.20..2.00 -> 0.850
out=$("$PY" bench/budget/analyze.py --stage-times "$T/run.jsonl" 2>&1)
if [ "$out" = "0.350 0.850" ]; then echo "ok:   medians of an even count: $out"
else echo "FAIL: expected '0.350 0.850', got '$out'"; failed=1; fi

{ msg light 0.10 0 0; msg light 0.20 0 0; } > "$T/light.jsonl"
out=$("$PY" bench/budget/analyze.py --stage-times "$T/light.jsonl" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -qF "light.jsonl: no frame ran both stages" <<<"$out"; then
    echo "ok:   a run without specialist frames is refused: $out"
else echo "FAIL: expected a refusal naming light.jsonl, got exit $rc: $out"; failed=1; fi
exit $failed
