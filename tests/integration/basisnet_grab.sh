#!/usr/bin/env bash
# basisnet grab: frames of the sample clip and of a test pattern saved as PNG into
# DIR/LABEL/, checked for size, channels, content (the Fashion-MNIST image the truth file
# names, one second apart), no overwrite on a second run, Ctrl-C, the training loader
# reading the folder, and clear errors with the documented exit status.
source "$(dirname "$0")/daemon_common.bash"
BN=$ROOT/$BUILD/basisnet
CLIP=$ROOT/samples/fmnist-sample.mkv
TRUTH=$ROOT/samples/fmnist-sample.truth.csv
FMNIST=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[ -x "$BN" ] || fail "$BN not built"
OUT=$T/frames
U=$OUT/unlabelled

# check_pngs DIR COUNT W H MODE: exactly COUNT PNGs, each W x H, PIL mode MODE (L or RGB),
# with the PNG header agreeing (bit depth 8, colour type 0 gray / 2 RGB), all decodable.
check_pngs() {
    "$PY" - "$@" <<'PY' || fail "PNG check of $1"
import glob, os, struct, sys
from PIL import Image
d, n, w, h, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
files = sorted(glob.glob(os.path.join(d, "*.png")))
if len(files) != n or len(os.listdir(d)) != n:
    sys.exit("%s: %d PNGs (%d entries), expected %d" % (d, len(files), len(os.listdir(d)), n))
for f in files:
    with open(f, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        sys.exit("%s: not a PNG" % f)
    pw, ph, depth, ctype = struct.unpack(">IIBB", head[16:26])
    if (pw, ph, depth, ctype) != (w, h, 8, 0 if mode == "L" else 2):
        sys.exit("%s: header %dx%d depth %d type %d" % (f, pw, ph, depth, ctype))
    with Image.open(f) as im:
        im.load()
        if im.size != (w, h) or im.mode != mode:
            sys.exit("%s: PIL sees %s %s" % (f, im.size, im.mode))
PY
}

# ---- file source: 5 gray 28x28 frames one second apart -------------------------------------
rc=0
"$BN" grab "$CLIP" --out "$OUT" --count 5 --every 1 --gray --size 28x28 \
    >"$T/run1.out" 2>"$T/run1.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/run1.err" >&2; fail "grab from the clip: exit $rc"; }
grep -q "^saved 5 frames to $U " "$T/run1.out" || fail "summary: $(cat "$T/run1.out")"
grep -q "saved 5/5 frames to $U" "$T/run1.err" || fail "no progress line: $(cat "$T/run1.err")"
check_pngs "$U" 5 28 28 L
ls "$U" | grep -Eqv '^[0-9]{8}T[0-9]{6}-[0-9]{6}\.png$' && fail "file names: $(ls "$U")"
ok "clip: 5 gray 28x28 PNGs in DIR/unlabelled, named PREFIX-NNNNNN.png"

# Each frame shows the Fashion-MNIST test image the truth file gives for its frame, and
# --every 1 (30 frames) puts consecutive saves at least two 15-frame images apart.
if [ -f "$FMNIST" ]; then
    "$PY" - "$U" "$TRUTH" "$FMNIST" <<'PY' || fail "clip frames vs truth"
import csv, glob, gzip, os, sys
import numpy as np
from PIL import Image
d, truth, idx = sys.argv[1:4]
with gzip.open(idx) as f:
    imgs = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28).astype(np.int32)
rows = list(csv.DictReader(open(truth)))
cand = np.stack([imgs[int(r["test_image_index"])] for r in rows])
seg = []
for f in sorted(glob.glob(os.path.join(d, "*.png"))):
    a = np.asarray(Image.open(f), np.int32)
    diff = np.abs(cand - a).mean(axis=(1, 2))
    order = np.argsort(diff)
    best, second = diff[order[0]], diff[order[1]]
    if not (best < 6.0 and second > best + 10.0):
        sys.exit("%s: no clear match (best %.1f, next %.1f)" % (f, best, second))
    seg.append(int(order[0]))
# every frame is decoded (no skipping), so --every 1 saves the frames at 0, 1, 2, 3, 4 s of
# stream time exactly: every second 15-frame segment
if seg != [0, 2, 4, 6, 8]:
    sys.exit("segments %s: expected [0, 2, 4, 6, 8] (frames at 0, 1, 2, 3, 4 s)" % seg)
print("segments", seg)
PY
    ok "clip: frames match the truth file's images, the frames at 0, 1, 2, 3, 4 s exactly"
else
    fail "$FMNIST missing (dataset-fashion-mnist, tools/install-deps.sh): clip frames not checked"
fi

# ---- a second run adds, never overwrites --------------------------------------------------
# Runs are usually seconds apart, so their prefixes differ anyway; to make the second run
# meet existing names, PREFIX-000001/2.png are planted for every second it may start in.
first=$(ls "$U" | head -1)
planted=()
for s in 0 1 2 3 4 5; do
    p=$(date -u -d "@$(( $(date +%s) + s ))" +%Y%m%dT%H%M%S)
    for k in 000001 000002; do
        [ -e "$U/$p-$k.png" ] || { cp "$U/$first" "$U/$p-$k.png"; planted+=("$p-$k.png"); }
    done
done
before=$(ls "$U" | wc -l)
sum1=$(cd "$U" && sha256sum -- *.png)
rc=0
"$BN" grab "$CLIP" --out "$OUT" --count 5 --every 1 --gray --size 28x28 \
    >"$T/run2.out" 2>"$T/run2.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/run2.err" >&2; fail "second grab: exit $rc"; }
check_pngs "$U" $((before + 5)) 28 28 L
[ "$(cd "$U" && sha256sum -- $(echo "$sum1" | awk '{print $2}'))" = "$sum1" ] \
    || fail "the second run changed existing files"
grep -Eq "^saved 5 frames to $U \([0-9T]{15}-00000[3-9]\.png" "$T/run2.out" \
    || fail "second run did not number past the existing files: $(cat "$T/run2.out")"
# Only the frames: the planted files go, so the loader below sees what grab wrote.
(cd "$U" && rm -- "${planted[@]}")
check_pngs "$U" 10 28 28 L
ok "second run: 5 more files numbered past existing names, none overwritten"

# ---- test pattern, every frame, RGB at the default size ---------------------------------
rc=0
"$BN" grab test:smpte --out "$OUT" --label bars --count 3 --every 0 \
    >"$T/smpte.out" 2>"$T/smpte.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/smpte.err" >&2; fail "grab test:smpte: exit $rc"; }
check_pngs "$OUT/bars" 3 224 224 RGB
"$PY" - "$OUT/bars" <<'PY' || fail "smpte frames are not colour bars"
import glob, sys
import numpy as np
from PIL import Image
for f in sorted(glob.glob(sys.argv[1] + "/*.png")):
    a = np.asarray(Image.open(f), np.int32)
    top = a[:100]   # the bars (the square crop keeps the centre 480 of 640 columns)
    sat = (top.max(axis=2) - top.min(axis=2)).mean()
    if sat < 60:
        sys.exit("%s: mean saturation %.1f, no colour bars" % (f, sat))
PY
ok "test:smpte --count 3 --every 0: 3 RGB 224x224 colour-bar frames in DIR/bars"

# ---- the training loader reads the folder tree ------------------------------------------
# the tree holds 224x224 RGB bars and 28x28 gray frames: refused, naming both sizes; a tree
# of the RGB frames alone (two labels) reads as camera-spec input (N, 3, 224, 224)
mkdir -p "$T/tree/bars" "$T/tree/bars2"
cp "$OUT"/bars/*.png "$T/tree/bars/"
cp "$OUT"/bars/*.png "$T/tree/bars2/"
"$PY" - "$ROOT/tools/train" "$OUT" "$T/tree" <<'PY' || fail "training loader"
import sys
sys.path.insert(0, sys.argv[1])
from basisnet_train import models as bm
from basisnet_train.data import DatasetError, read_image_folder
try:
    read_image_folder(sys.argv[2])
    sys.exit("loader: a tree of 224x224 and 28x28 images was read")
except DatasetError as e:
    if "must have one size" not in str(e) or "28x28" not in str(e) or "224x224" not in str(e):
        sys.exit("loader: unexpected message: %s" % e)
x, y, labels = read_image_folder(sys.argv[3], inp=bm.INPUTS["cam224"])
if labels != ["bars", "bars2"] or x.shape != (6, 3, 224, 224) or sorted(y.tolist()) != [0] * 3 + [1] * 3:
    sys.exit("loader: labels %s, x %s, y %s" % (labels, x.shape, y.tolist()))
PY
ok "tools/train read_image_folder: mixed 28x28/224x224 refused; 6 RGB frames read as (6, 3, 224, 224)"

# ---- Ctrl-C stops after the current frame and keeps the frames ---------------------------
"$BN" grab test:ball --out "$OUT" --label ball --count 100000 --every 0 --size 32x32 \
    >"$T/int.out" 2>"$T/int.err" &
GPID=$!
for _ in $(seq 1 100); do
    [ "$(ls "$OUT/ball" 2>/dev/null | wc -l)" -ge 5 ] && break
    sleep 0.05
done
kill -INT "$GPID"
rc=0
wait "$GPID" || rc=$?
[ "$rc" -eq 0 ] || fail "SIGINT: exit $rc ($(cat "$T/int.err"))"
grep -Eq '^saved [0-9]+ frames to .*\[interrupted\]$' "$T/int.out" || fail "SIGINT summary: $(cat "$T/int.out")"
n=$(ls "$OUT/ball" | wc -l)
[ "$n" -ge 5 ] || fail "SIGINT: $n frames kept"
grep -q "^saved $n frames" "$T/int.out" || fail "summary says $(cat "$T/int.out"), folder has $n"
check_pngs "$OUT/ball" "$n" 32 32 RGB
ok "SIGINT: exit 0, $n complete frames kept"

# ---- errors -------------------------------------------------------------------------------
# expect_error RC PATTERN ARGS...: exit status RC, stderr matching PATTERN, nothing on stdout
# that claims frames, and no folder left under $T/e.
expect_error() {
    local want=$1 pat=$2; shift 2
    local rc=0
    "$BN" grab "$@" >"$T/e.out" 2>"$T/e.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "grab $*: exit $rc, expected $want ($(cat "$T/e.err"))"
    grep -q -- "$pat" "$T/e.err" || fail "grab $*: stderr lacks '$pat': $(cat "$T/e.err")"
    [ ! -e "$T/e" ] || fail "grab $*: left $(find "$T/e")"
    ok "grab $* -> exit $rc: $(head -1 "$T/e.err")"
}
expect_error 1 "/dev/video-bn-missing" /dev/video-bn-missing --out "$T/e"
expect_error 1 "'/dev/null' is not a V4L2 device" /dev/null --out "$T/e"
expect_error 1 "$T/no-such.mkv" "$T/no-such.mkv" --out "$T/e"
echo "not a video" > "$T/text.mkv"
expect_error 1 "video file '$T/text.mkv'" "$T/text.mkv" --out "$T/e"
expect_error 1 "/proc/x" test:smpte --out /proc/x
expect_error 1 "unknown test pattern 'plaid'" test:plaid --out "$T/e"
expect_error 2 "--count expects" test:smpte --out "$T/e" --count 0
expect_error 2 "--size expects" test:smpte --out "$T/e" --size 12
expect_error 2 "--every expects" test:smpte --out "$T/e" --every -1
expect_error 2 "--label expects" test:smpte --out "$T/e" --label a/b
expect_error 2 "missing --out" test:smpte
echo "basisnet_grab: all passed"
