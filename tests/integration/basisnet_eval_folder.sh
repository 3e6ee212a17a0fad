#!/usr/bin/env bash
# basisnet eval --folder: 20 Fashion-MNIST test images per class written as PNGs into
# DIR/<label>/ ("T-shirt/top" as DIR/T-shirt_top) score exactly what --images/--labels scores
# on the same images as idx (one threshold, another threshold, the sweep); the per-class table
# agrees with basisnet classify on each file; --limit follows the sorted order; a label
# without a folder is reported; mixed sizes warn; unknown, empty and missing class folders, a
# corrupt or non-image file and --folder with --images are errors with the documented exit
# status and a message naming the culprit.
source "$(dirname "$0")/daemon_common.bash"
BN=$ROOT/$BUILD/basisnet
FM=/usr/share/datasets/fashion-mnist
[ -x "$BN" ] || fail "$BN not built"
[ -f "$FM/t10k-images-idx3-ubyte.gz" ] \
    || fail "$FM missing (dataset-fashion-mnist, tools/install-deps.sh)"
DS=$T/ds

# DS/<folder>/NNN.png (every 7th as .PNG: extensions are case-insensitive), and the same
# images as idx in the order eval reads the folder (folders, then files, sorted by name).
"$PY" - "$FM" "$DS" "$T/x.idx" "$T/y.idx" "$("$BN" info "$MODEL" | sed -n 's/^labels *[0-9]*: //p')" <<'PY' \
    || fail "writing the data set"
import gzip, os, re, struct, sys
import numpy as np
from PIL import Image
fm, ds, xo, yo, info = sys.argv[1:6]
x = np.frombuffer(gzip.open(fm + "/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
y = np.frombuffer(gzip.open(fm + "/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
labels = [l for l in re.split(r", (?=\d+=)", info.strip())]
labels = [l.split("=", 1)[1] for l in labels]
assert len(labels) == 10 and labels[0] == "T-shirt/top", labels
files = []
for c, lab in enumerate(labels):
    d = os.path.join(ds, lab.replace("/", "_"))
    os.makedirs(d)
    for j, i in enumerate(np.where(y == c)[0][:20]):
        name = "%03d.%s" % (j, "PNG" if j % 7 == 3 else "png")
        Image.fromarray(x[i]).save(os.path.join(d, name))
        files.append((os.path.basename(d), name, i, c))
files.sort(key=lambda f: (f[0], f[1]))
with open(xo, "wb") as f:
    f.write(struct.pack(">IIII", 0x803, len(files), 28, 28))
    for fo in files:
        f.write(x[fo[2]].tobytes())
with open(yo, "wb") as f:
    f.write(struct.pack(">II", 0x801, len(files)))
    f.write(bytes(fo[3] for fo in files))
PY
[ -d "$DS/T-shirt_top" ] && [ "$(ls "$DS"/*/* | wc -l)" -eq 200 ] || fail "data set: $(ls "$DS")"

# run_eval NAME ARGS...: basisnet eval MODEL ARGS, exit 0, stdout in $T/NAME.out.
run_eval() {
    local name=$1 rc=0; shift
    "$BN" eval "$MODEL" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    [ "$rc" -eq 0 ] || fail "eval $*: exit $rc: $(cat "$T/$name.err")"
}
# The report without its first line (the source), latency and the per-class table.
body() { sed '1d; /^class /,$d; /^mean latency/d; /^$/d' "$1"; }

for args in "" "--threshold 0.5" "--sweep"; do
    run_eval folder --folder "$DS" $args
    run_eval idx --images "$T/x.idx" --labels "$T/y.idx" $args
    grep -q "^model .*, 200 images from $DS\$" "$T/folder.out" || fail "header: $(head -1 "$T/folder.out")"
    body "$T/folder.out" >"$T/folder.body"; body "$T/idx.out" >"$T/idx.body"
    [ -s "$T/idx.body" ] || fail "no report from the idx run: $(cat "$T/idx.out")"
    diff "$T/idx.body" "$T/folder.body" >&2 || fail "--folder $args differs from --images/--labels"
    [ -s "$T/folder.err" ] && fail "--folder $args: stderr: $(cat "$T/folder.err")"
    ok "--folder ${args:-(model threshold)} == --images/--labels: $(grep -m1 -E '^accuracy|^specialist' "$T/folder.out")"
done

# Per class at one threshold: the table against basisnet classify on every file.
T5=0.5
run_eval folder --folder "$DS" --threshold $T5
(cd "$DS" && "$BN" classify --threshold $T5 "$MODEL" */*) >"$T/cls.out" 2>"$T/cls.err" \
    || fail "classify: $(cat "$T/cls.err")"
"$PY" - "$T/cls.out" "$T/folder.out" <<'PY' || fail "per-class table vs classify"
import collections, sys
n, ok, ex = collections.Counter(), collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    folder = f[0].split("/")[0]
    n[folder] += 1
    ok[folder] += f[1].replace("/", "_") == folder
    ex[folder] += f[3] == "stage light"
rows = {}
lines = open(sys.argv[2]).read().split("\n")
start = lines.index(next(l for l in lines if l.startswith("class ")))
for l in lines[start + 1:]:
    if not l.strip():
        continue
    # label and folder may hold spaces ("Ankle boot"): the folder is the 16-wide column 2
    folder = l[17:33].strip()
    imgs, acc, frac, share = l[33:].split()
    rows[folder] = (int(imgs), acc, frac, share)
if len(rows) != 10:
    sys.exit("%d per-class rows: %s" % (len(rows), rows))
for folder in n:
    want = (n[folder], "%.4f" % (ok[folder] / n[folder]), "(%d/%d)" % (ok[folder], n[folder]),
            "%.4f" % (ex[folder] / n[folder]))
    if rows.get(folder) != want:
        sys.exit("%s: table %s, classify %s" % (folder, rows.get(folder), want))
print("per class ok:", ", ".join("%s %d/%d" % (k, ok[k], n[k]) for k in sorted(n)))
PY
grep -Eq '^T-shirt/top +T-shirt_top +20 ' "$T/folder.out" || fail "no T-shirt/top row: $(cat "$T/folder.out")"
ok "per-class table agrees with basisnet classify on each file (label T-shirt/top read from T-shirt_top)"

# --limit: the first N in the order read: all 20 of "Ankle boot", 5 of "Bag", none after.
run_eval limit --folder "$DS" --limit 25
grep -Eq '^Ankle boot +Ankle boot +20 ' "$T/limit.out" && grep -Eq '^Bag +Bag +5 ' "$T/limit.out" \
    && grep -Eq '^Coat +Coat +0 +- +-$' "$T/limit.out" || fail "--limit 25: $(cat "$T/limit.out")"
ok "--limit 25 takes folders and files in sorted order"

# A label without a folder: fewer classes, one line naming it.
cp -r "$DS" "$T/nine" && rm -r "$T/nine/Bag"
run_eval nine --folder "$T/nine/"
grep -q '^model .*, 180 images from' "$T/nine.out" || fail "nine classes: $(head -1 "$T/nine.out")"
[ "$(grep -c 'without a folder' "$T/nine.out")" -eq 1 ] \
    && grep -q '^not evaluated .*1 model label without a folder: Bag$' "$T/nine.out" \
    || fail "missing label line: $(cat "$T/nine.out")"
ok "a model label without a folder: 180 images, $(grep 'without a folder' "$T/nine.out")"

# Mixed sizes: one warning line naming a file whose size differs from the first; JPEG read.
mkdir -p "$T/mixed/Bag" "$T/mixed/Coat"
cp "$DS"/Bag/00[0-4].* "$T/mixed/Bag/"
"$PY" -c "
from PIL import Image
im = Image.open('$DS/Coat/000.png')
im.resize((56, 56)).save('$T/mixed/Coat/big.png'); im.convert('RGB').save('$T/mixed/Coat/c.JPG', quality=95)
im.resize((40, 40)).save('$T/mixed/Coat/d.jpeg')"
run_eval mixed --folder "$T/mixed"
[ "$(wc -l <"$T/mixed.err")" -eq 1 ] && grep -q "warning: $T/mixed/Coat/big.png is 56x56 but $T/mixed/Bag/000.png is 28x28" "$T/mixed.err" \
    || fail "mixed sizes: stderr: $(cat "$T/mixed.err")"
grep -q '^model .*, 8 images from' "$T/mixed.out" || fail "mixed: $(head -1 "$T/mixed.out")"
ok "mixed sizes and .JPG/.jpeg: exit 0, one warning: $(cut -c1-100 "$T/mixed.err")..."

# ---- errors -------------------------------------------------------------------------------
# expect_error RC PATTERN ARGS...: exit status RC, stderr containing PATTERN, no report.
expect_error() {
    local want=$1 pat=$2 rc=0; shift 2
    "$BN" eval "$MODEL" "$@" >"$T/e.out" 2>"$T/e.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "eval $*: exit $rc, expected $want ($(cat "$T/e.err"))"
    grep -qF -- "$pat" "$T/e.err" || fail "eval $*: stderr lacks '$pat': $(cat "$T/e.err")"
    grep -q '^accuracy' "$T/e.out" && fail "eval $*: printed a report"
    ok "eval $* -> exit $rc: $(head -1 "$T/e.err" | cut -c1-150)"
}
cp -r "$T/mixed" "$T/unknown" && mkdir "$T/unknown/Socks" && cp "$DS/Bag/000.png" "$T/unknown/Socks/"
expect_error 1 "$T/unknown/Socks: folder 'Socks' is not a label of the model" --folder "$T/unknown"
grep -qF "T-shirt_top (label T-shirt/top), Trouser," "$T/e.err" && grep -qF "Ankle boot" "$T/e.err" \
    || fail "unknown folder: the labels are not listed: $(cat "$T/e.err")"
mv "$T/unknown/Socks" "$T/unknown/unlabelled"
expect_error 1 "basisnet grab saves to DIR/unlabelled" --folder "$T/unknown"
cp -r "$T/mixed" "$T/empty" && mkdir "$T/empty/Dress" && touch "$T/empty/Dress/notes.txt"
expect_error 1 "$T/empty/Dress: empty class folder" --folder "$T/empty"
mkdir "$T/none" && cp "$DS/Bag/000.png" "$T/none/"
expect_error 1 "$T/none: no class folders" --folder "$T/none"
expect_error 1 "$T/absent: No such file or directory" --folder "$T/absent"
cp -r "$T/mixed" "$T/corrupt" && head -c 300 "$DS/Coat/000.png" >"$T/corrupt/Coat/001.png"
expect_error 1 "$T/corrupt/Coat/001.png: " --folder "$T/corrupt"
cp -r "$T/mixed" "$T/text" && echo "not an image" >"$T/text/Bag/zz.jpg"
expect_error 1 "$T/text/Bag/zz.jpg: not a PNG or JPEG file" --folder "$T/text"
expect_error 2 "--folder and --images/--labels are mutually exclusive" \
    --folder "$DS" --images "$T/x.idx" --labels "$T/y.idx"
expect_error 2 "--folder and --images/--labels are mutually exclusive" --images "$T/x.idx" --folder "$DS"
expect_error 2 "Usage: basisnet eval" --folder
echo "basisnet_eval_folder: all passed"
