#!/usr/bin/env bash
# tools/scene/make-scene.py (the generated porch scene): same seed -> same rendered frames,
# another seed -> others; the region of interest is inside the frame and holds the state
# (renders of two states with one seed are identical outside it and differ inside it, even in
# the darkest frame); the brightness varies >= 2x; the ROI's mean colour does not tell the
# states apart but its normalised pixels do, on another seed; a mixed clip's truth covers
# every frame once with every label and transition, and the .mkv decodes to that many
# frames of the right size; bad arguments fail with the right message.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
TOOL=$ROOT/tools/scene/make-scene.py
T=$(mktemp -d /tmp/bn-scene.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

"$PY" -c 'import numpy' 2>/dev/null || { echo "SKIP: $PY has no numpy (python3-numpy)"; exit 77; }
for e in rawvideoparse videoconvert vp8enc vp8dec matroskamux matroskademux; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 || { echo "SKIP: GStreamer element $e missing (make deps)"; exit 77; }
done
[ -x "$TOOL" ] || fail "$TOOL is not executable"
scene() { "$PY" "$TOOL" --quiet "$@"; }

# ---- arguments ---------------------------------------------------------------------------
scene --help >"$T/help" || fail "--help exits non-zero"
for w in --state --seed --seconds --fps --size --name --png-every --preview --print-roi --raw \
         door_closed door_open parcel truth.csv scene.json source.crop; do
    grep -q -- "$w" "$T/help" || fail "--help does not mention $w"
done
expect_usage() {   # message-substring args...
    local want=$1; shift; local rc=0
    scene "$@" >"$T/err.out" 2>"$T/err" || rc=$?
    [ "$rc" -eq 2 ] || fail "$* exited $rc, expected 2"
    grep -q -- "$want" "$T/err" || { cat "$T/err" >&2; fail "$*: no '$want' in the message"; }
}
expect_usage "valid: door_closed, door_open, parcel" --out "$T/x" --state porch
expect_usage "bad --size '320x241'" --size 320x241 --print-roi
expect_usage "bad --size 'big'" --size big --print-roi
touch "$T/file"
expect_usage "cannot write to --out directory '$T/file/sub'" --out "$T/file/sub" --state parcel --seconds 1
expect_usage "needs at least 28 s" --out "$T/x" --seconds 10
ok "usage errors: unknown state lists the valid ones, bad --size, unwritable --out, short mixed clip"

# ---- region of interest ---------------------------------------------------------------------
for s in 320x240 640x480 160x120 400x240 1920x1080; do
    roi=$(scene --print-roi --size $s)
    case $s in
    320x240) [ "$roi" = "92,50,136,136" ] || fail "ROI at 320x240: $roi";;
    640x480) [ "$roi" = "184,100,272,272" ] || fail "ROI at 640x480: $roi";;
    esac
    IFS=, read -r x y w h <<<"$roi"
    W=${s%x*} H=${s#*x}
    [ "$x" -ge 0 ] && [ "$y" -ge 0 ] && [ $((x + w)) -le "$W" ] && [ $((y + h)) -le "$H" ] && [ "$w" -gt 0 ] \
        || fail "ROI $x,$y,$w,$h outside the $s frame"
done
ok "ROI 92,50,136,136 at 320x240, scaled with --size and inside the frame"

# ---- renders: three states x two seeds, raw frames -------------------------------------------
A="--seconds 6 --fps 5"
for seed in 5 6; do
    for st in door_closed door_open parcel; do
        scene --out "$T/s$seed" --state $st --seed $seed $A --raw "$T/s$seed/$st.rgb" >/dev/null
    done
done
scene --out "$T/again" --state door_closed --seed 5 $A --raw "$T/again/door_closed.rgb" >/dev/null
cmp -s "$T/s5/door_closed.rgb" "$T/again/door_closed.rgb" || fail "same arguments, different frames"

"$PY" - "$T" <<'PY' || fail "render properties"
import json, sys
import numpy as np
T = sys.argv[1]
LABELS = ["door_closed", "door_open", "parcel"]
meta = {(s, st): json.load(open(f"{T}/s{s}/{st}.scene.json")) for s in (5, 6) for st in LABELS}
again = json.load(open(f"{T}/again/door_closed.scene.json"))
m = meta[5, "door_closed"]
if again["frames_sha256"] != m["frames_sha256"]:
    sys.exit("same seed: the frame hash differs")
if meta[6, "door_closed"]["frames_sha256"] == m["frames_sha256"]:
    sys.exit("seed 6 renders the same frames as seed 5")
w, h, n = m["width"], m["height"], m["frames"]
r = m["roi"]
x0, y0, x1, y1 = r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]
if (w, h, n) != (320, 240, 30) or m["roi_crop"] != "92,50,136,136":
    sys.exit("metadata: %s" % {k: m[k] for k in ("width", "height", "frames", "roi_crop")})

def load(s, st):
    a = np.fromfile(f"{T}/s{s}/{st}.rgb", np.uint8)
    if a.size != n * h * w * 3:
        sys.exit(f"{st}: {a.size} bytes of raw frames, expected {n * h * w * 3}")
    return a.reshape(n, h, w, 3).astype(np.float32)
fr = {(s, st): load(s, st) for s in (5, 6) for st in LABELS}
lw = np.array([0.299, 0.587, 0.114], np.float32)

# one truth row covering the clip
for st in LABELS:
    rows = open(f"{T}/s5/{st}.truth.csv").read().split()
    if rows != ["first_frame,last_frame,label_index,label_name", f"0,{n - 1},{LABELS.index(st)},{st}"]:
        sys.exit(f"{st}.truth.csv: {rows}")

# brightness really varies
for st in LABELS:
    luma = fr[5, st] @ lw
    per = luma.mean(axis=(1, 2))
    if per.max() < 2 * per.min():
        sys.exit(f"{st}: frame mean luma {per.min():.1f}..{per.max():.1f}, less than 2x")
print("frame mean luma %.1f..%.1f" % (per.min(), per.max()), flush=True)

# same nuisance, other state: identical outside the ROI (with a margin for shake and blur),
# different inside it, in every frame
mg = 6
outside = np.ones((h, w), bool)
outside[max(y0 - mg, 0):y1 + mg, max(x0 - mg, 0):x1 + mg] = False
for a, b in ((0, 1), (0, 2), (1, 2)):
    A, B = fr[5, LABELS[a]], fr[5, LABELS[b]]
    d_out = np.abs(A - B)[:, outside].max()
    if d_out != 0:
        sys.exit(f"{LABELS[a]} vs {LABELS[b]}: differ outside the ROI (max {d_out})")
    # the parcel covers ~7% of the ROI: besides the mean, the 98th percentile of the gray
    # difference must stand well above the noise (sigma ~5 in the darkest frames)
    g = np.abs((A - B)[:, y0:y1, x0:x1] @ lw).reshape(n, -1)
    d_in, p98 = g.mean(1), np.percentile(g, 98, axis=1)
    if d_in.min() < 0.8 or p98.min() < 14.0:
        sys.exit(f"{LABELS[a]} vs {LABELS[b]}: ROI gray mean abs diff min {d_in.min():.2f}, 98th "
                 f"percentile min {p98.min():.1f}")
    print(f"{LABELS[a]} vs {LABELS[b]}: ROI gray mean abs diff >= {d_in.min():.1f}, 98th percentile "
          f">= {p98.min():.1f} in every frame", flush=True)

# the ROI's mean colour overlaps across states: a nearest-centroid classifier on it, fitted and
# scored on the same frames, stays near chance; the luma ranges overlap pairwise
feat = {st: fr[5, st][:, y0:y1, x0:x1].mean(axis=(1, 2)) for st in LABELS}
cent = np.stack([feat[st].mean(0) for st in LABELS])
acc = np.mean([np.argmin(((feat[st][:, None] - cent[None]) ** 2).sum(-1), 1) == k
               for k, st in enumerate(LABELS)])
if acc > 0.6:
    sys.exit(f"ROI mean colour separates the states (nearest centroid {acc:.2f})")
lum = {st: feat[st] @ lw for st in LABELS}
for a in LABELS:
    for b in LABELS:
        if a < b and min(lum[a].max(), lum[b].max()) <= max(lum[a].min(), lum[b].min()):
            sys.exit(f"ROI mean luma of {a} and {b} do not overlap")
# ... while the normalised gray pixels of the ROI (28x28) separate them on another seed
def norm(a):
    g = a[:, y0:y1, x0:x1] @ lw
    k = g.shape[1] // 28
    g = g[:, :28 * k, :28 * k].reshape(len(g), 28, k, 28, k).mean(axis=(2, 4)).reshape(len(g), -1)
    g -= g.mean(1, keepdims=True)
    return g / (g.std(1, keepdims=True) + 1e-6)
tc = np.stack([norm(fr[5, st]).mean(0) for st in LABELS])
acc2 = np.mean([np.argmax(norm(fr[6, st]) @ tc.T, 1) == k for k, st in enumerate(LABELS)])
if acc2 < 0.9:
    sys.exit(f"normalised ROI pixels separate the states on seed 6 in only {acc2:.2f}")
print(f"ROI mean colour nearest centroid {acc:.2f}; normalised ROI template on another seed {acc2:.2f}")
PY
ok "determinism, ROI holds the state, brightness varies, mean colour overlaps"

# ---- mixed clip: truth, encode, decode -------------------------------------------------------
scene --out "$T/mix" --seed 9 --seconds 28 --fps 4 --png-every 10 --preview "$T/mix/p.png" >"$T/mix.out" \
    || fail "mixed clip: exit $?"
[ -s "$T/mix/scene.mkv" ] || fail "no scene.mkv"
gst-launch-1.0 -v filesrc location="$T/mix/scene.mkv" ! matroskademux ! vp8dec ! videoconvert \
    ! video/x-raw,format=RGB ! fdsink fd=3 3>"$T/mix/dec.rgb" >"$T/mix/dec.log" 2>&1 \
    || fail "decoding scene.mkv failed: $(tail -3 "$T/mix/dec.log")"
grep -q "width=(int)320, height=(int)240" "$T/mix/dec.log" || fail "decoded caps are not 320x240"
scene --out "$T/mixraw" --seed 9 --seconds 28 --fps 4 --raw "$T/mixraw/scene.rgb" >/dev/null

"$PY" - "$T" <<'PY' || fail "mixed clip properties"
import csv, json, os, struct, sys
import numpy as np
T = sys.argv[1]
LABELS = ["door_closed", "door_open", "parcel"]
m = json.load(open(f"{T}/mix/scene.scene.json"))
n, w, h = m["frames"], m["width"], m["height"]
if n != 112:
    sys.exit(f"{n} frames, expected 28 s x 4 fps = 112")
rows = list(csv.DictReader(open(f"{T}/mix/scene.truth.csv")))
if list(rows[0].keys()) != ["first_frame", "last_frame", "label_index", "label_name"]:
    sys.exit(f"truth columns {list(rows[0].keys())}")
seen = np.zeros(n, int)
lab = np.full(n, -1)
for r in rows:
    a, b, k = int(r["first_frame"]), int(r["last_frame"]), int(r["label_index"])
    if LABELS[k] != r["label_name"] or b < a:
        sys.exit(f"bad truth row {r}")
    seen[a:b + 1] += 1
    lab[a:b + 1] = k
if (seen != 1).any():
    sys.exit(f"truth does not cover every frame exactly once ({np.flatnonzero(seen != 1)[:5]})")
if set(lab) != {0, 1, 2}:
    sys.exit(f"labels present: {sorted(set(lab))}")
trans = {(int(rows[i]["label_index"]), int(rows[i + 1]["label_index"])) for i in range(len(rows) - 1)}
if len(trans) != 6:
    sys.exit(f"transitions present: {sorted(trans)}")
counts = np.bincount(lab, minlength=3)
print(f"{len(rows)} segments, frames per state {counts.tolist()}, all 6 transitions")
dec = np.fromfile(f"{T}/mix/dec.rgb", np.uint8)
if dec.size != n * w * h * 3:
    sys.exit(f"decoded {dec.size / (w * h * 3):.2f} frames of {w}x{h}, expected {n}")
raw = np.fromfile(f"{T}/mixraw/scene.rgb", np.uint8)
if json.load(open(f"{T}/mixraw/scene.scene.json"))["frames_sha256"] != m["frames_sha256"]:
    sys.exit("the encoded run and the --raw run rendered different frames")
d = dec.astype(np.float32) - raw
psnr = 10 * np.log10(255 ** 2 / (d * d).mean())
if not 24 < psnr < 45:
    sys.exit(f"decoded clip vs rendered frames: PSNR {psnr:.1f} dB (expected mild compression)")
print(f"decoded {n} frames {w}x{h}, PSNR {psnr:.1f} dB against the rendered frames")
pngs = sorted(os.path.join(d, f) for d, _, fs in os.walk(f"{T}/mix/frames") for f in fs)
want = [f"{T}/mix/frames/{LABELS[lab[i]]}/{i:06d}.png" for i in range(0, n, 10)]
if pngs != sorted(want):
    sys.exit(f"--png-every 10 wrote {pngs[:3]}..., expected {sorted(want)[:3]}...")
def png_size(p):
    b = open(p, "rb").read(24)
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{p} is no PNG")
    return struct.unpack(">II", b[16:24])
if png_size(pngs[0]) != (w, h):
    sys.exit(f"frame PNG {png_size(pngs[0])}")
pw, ph = png_size(f"{T}/mix/p.png")
if pw < 3 * w or ph < 3 * h:
    sys.exit(f"preview {pw}x{ph} is smaller than 3x3 frames")
PY
ok "mixed clip: truth covers every frame once with every label and transition; decodes to 112 320x240 frames"
echo "make_scene: all passed"
