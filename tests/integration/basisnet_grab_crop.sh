#!/usr/bin/env bash
# basisnet grab --crop (source.crop): the saved image is exactly the region of the source
# frame, for a test pattern (size known when the pipeline is built) and for the sample clip
# (size known only at negotiation: the caps probe sets videocrop's edges); a region
# elsewhere in the frame differs; letterbox pads a crop whose aspect differs from the
# output instead of cutting it; a crop outside the frame or malformed fails clearly.
source "$(dirname "$0")/daemon_common.bash"
BN=$ROOT/$BUILD/basisnet
CLIP=$ROOT/samples/fmnist-sample.mkv
[ -x "$BN" ] || fail "$BN not built"
[ -f "$CLIP" ] || { echo "SKIP: $CLIP missing"; exit 77; }
"$PY" -c 'import PIL, numpy' 2>/dev/null || { echo "SKIP: $PY has no PIL/numpy (python3-pil)"; exit 77; }

# grab LABEL ARGS...: one frame into $T/g/LABEL; exit status in $rc, stderr in $T/LABEL.err
grab() {
    local label=$1; shift
    rc=0
    "$BN" grab "$@" --out "$T/g" --label "$label" --count 1 --every 0 \
        >"$T/$label.out" 2>"$T/$label.err" || rc=$?
}
png() { ls "$T/g/$1"/*.png; }

# compare FULL CROPPED X Y W H MAXMEAN MINOTHER: CROPPED equals FULL's region (mean abs
# diff per pixel and channel <= MAXMEAN), and differs from the region shifted by W/2
# (mean > MINOTHER), so that the check would see a crop in the wrong place.
compare() {
    "$PY" - "$@" <<'PY' || fail "compare $*"
import sys
import numpy as np
from PIL import Image
full, crop = (np.asarray(Image.open(f), np.int32) for f in sys.argv[1:3])
x, y, w, h = map(int, sys.argv[3:7])
limit, minother = float(sys.argv[7]), float(sys.argv[8])
want = full[y:y + h, x:x + w]
if crop.shape != want.shape:
    sys.exit("shape %s, expected %s" % (crop.shape, want.shape))
d = np.abs(crop - want).mean()
if d > limit:
    sys.exit("region differs from the uncropped frame's: mean abs diff %.2f > %.2f" % (d, limit))
sx = x + w // 2 if x + w // 2 + w <= full.shape[1] else x - w // 2
other = np.abs(crop - full[y:y + h, sx:sx + w]).mean()
if other <= minother:
    sys.exit("the region shifted to x=%d looks the same (mean abs diff %.2f): test is blind" % (sx, other))
print("mean abs diff %.2f (shifted region: %.2f)" % (d, other))
PY
}

# ---- test pattern: crop at build time -------------------------------------------------------
# SMPTE bars at 640x480; the crop straddles bars and the lower blocks. Output size = crop size.
grab full test:smpte --size 640x480 --aspect stretch
[ "$rc" -eq 0 ] || { cat "$T/full.err" >&2; fail "uncropped test grab: exit $rc"; }
grab crop test:smpte --size 160x200 --crop 120,260,160,200
[ "$rc" -eq 0 ] || { cat "$T/crop.err" >&2; fail "cropped test grab: exit $rc"; }
compare "$(png full)" "$(png crop)" 120 260 160 200 2.0 50
ok "test pattern: --crop 120,260,160,200 saves exactly that region"

# ---- sample clip: crop from the negotiated caps -----------------------------------------------
grab cfull "$CLIP" --gray --size 280x280 --aspect stretch
[ "$rc" -eq 0 ] || { cat "$T/cfull.err" >&2; fail "uncropped clip grab: exit $rc"; }
grab ccrop "$CLIP" --gray --size 100x120 --crop 90,70,100,120
[ "$rc" -eq 0 ] || { cat "$T/ccrop.err" >&2; fail "cropped clip grab: exit $rc"; }
compare "$(png cfull)" "$(png ccrop)" 90 70 100 120 1.0 5
ok "clip: --crop 90,70,100,120 saves exactly that region (edges set at negotiation)"

# ---- aspect: a 2:1 crop into a square keeps the whole region, padded -------------------------
grab lbox "$CLIP" --gray --size 100x100 --crop 40,100,200,100
[ "$rc" -eq 0 ] || { cat "$T/lbox.err" >&2; fail "letterboxed clip grab: exit $rc"; }
"$PY" - "$(png cfull)" "$(png lbox)" <<'PY' || fail "letterbox of a 2:1 crop"
import sys
import numpy as np
from PIL import Image
full = Image.open(sys.argv[1])
got = np.asarray(Image.open(sys.argv[2]), np.int32)
# 200x100 scaled to 100x50, centred: rows 25..74 are the picture, the rest black borders
want = np.asarray(full.crop((40, 100, 240, 200)).resize((100, 50), Image.BILINEAR), np.int32)
# borders are black as videoscale pads YUV: luma 16, which GRAY8 keeps (docs/capture.md)
border = np.concatenate([got[:20], got[80:]])
if border.max() > 16 or border.min() != border.max():
    sys.exit("no uniform black borders above/below (values %d..%d)" % (border.min(), border.max()))
d = np.abs(got[25:75] - want).mean()
if d > 8:
    sys.exit("picture rows differ from the whole region scaled: mean abs diff %.2f" % d)
print("borders black, picture mean abs diff %.2f" % d)
PY
ok "clip: a 2:1 crop into 100x100 is letterboxed (default with --crop), not centre-cropped"

# ---- errors -----------------------------------------------------------------------------------
grab out1 "$CLIP" --gray --size 28x28 --crop 200,10,100,50
[ "$rc" -eq 1 ] || fail "crop outside the clip's frame: exit $rc, expected 1"
grep -q "video file '$CLIP': .*source.crop 200,10 100x50 lies outside the 280x280 frame (x + width = 300 > 280)" \
    "$T/out1.err" || fail "outside-the-frame message: $(cat "$T/out1.err")"
[ -e "$T/g/out1" ] && fail "a failed grab left $T/g/out1 behind"
ok "clip: crop outside the 280x280 frame: exit 1, names source.crop, the crop and the frame"

grab out2 test:smpte --crop 0,400,64,100
[ "$rc" -eq 2 ] || fail "crop outside the test frame: exit $rc, expected 2"
grep -q "source.crop 0,400 64x100 lies outside the 640x480 frame (y + height = 500 > 480)" \
    "$T/out2.err" || fail "test outside message: $(cat "$T/out2.err")"
ok "test pattern: crop outside the 640x480 frame refused before starting"

for bad in "1,2,3" "1,2,3,4,5" "a,b,c,d" "1,2,0,4" "1,2,3,-4" "-1,2,3,4" ""; do
    grab bad test:smpte --crop "$bad"
    [ "$rc" -eq 2 ] || fail "--crop '$bad': exit $rc, expected 2"
    grep -q "^basisnet grab: --crop: crop '$bad': " "$T/bad.err" \
        || fail "--crop '$bad': $(cat "$T/bad.err")"
done
grab bad test:smpte --crop
[ "$rc" -eq 2 ] || fail "--crop without a value: exit $rc"
ok "malformed, zero or negative crops: exit 2 with the reason"

# ---- the daemon: the same out-of-frame crop, known only at negotiation ----------------------
# It stays up, reports the source lost with the config's FILE:LINE:COL, and retries.
write_config "$T/d.yaml"
sed -i "s|^  kind: test|  kind: file\n  path: $CLIP\n  loop: true\n  retry_initial_ms: 100\n  retry_max_ms: 400\n  crop: {x: 200, y: 10, width: 100, height: 50}|; /^  pattern:/d; /^  width:/d; /^  height:/d" "$T/d.yaml"
line=$(grep -n '^  crop:' "$T/d.yaml" | cut -d: -f1)
start_daemon "$T/d.yaml"
sleep 1
grep -q "source: video file '$CLIP': $T/d.yaml:$line:3: key 'source.crop': 200,10 100x50 lies outside the 280x280 frame (x + width = 300 > 280); retrying" \
    "$T/daemon.log" || fail "daemon log: $(cat "$T/daemon.log")"
[ "$(stat_field "s['source']['state']")" = lost ] || fail "stats source state"
"$CTL" stats | grep -q "lies outside the 280x280 frame" || fail "stats do not say why: $("$CTL" stats)"
stop_daemon
ok "daemon: crop outside the clip's frame: stays up, source lost with FILE:LINE:COL, retried"

# ... and a crop that fits classifies frames.
sed -i "s|crop: {x: 200, y: 10, width: 100, height: 50}|crop: {x: 0, y: 0, width: 140, height: 140}|" "$T/d.yaml"
start_daemon "$T/d.yaml"
for _ in $(seq 50); do [ "$(stat_field "s['frames']['classified'] > 5")" = True ] && break; sleep 0.1; done
[ "$(stat_field "s['source']['state']")" = running ] || fail "source not running with a crop that fits"
grep -q "videocrop name=bncrop" "$T/daemon.log" || fail "no videocrop in the pipeline: $(cat "$T/daemon.log")"
stop_daemon
ok "daemon: a crop inside the frame runs (videocrop before the scaler)"
