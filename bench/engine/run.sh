#!/bin/bash
# Engine benchmark: libbasisnet (`basisnet bench`) side by side with ONNX Runtime
# (onnxruntime-node), PyTorch TorchScript and OpenCV DNN on the same networks and weights,
# batch 1, 1 and 2 threads, several interleaved rounds. Networks: the Fashion-MNIST model
# (models/fmnist-basisnet.bnm, else the random-tiny fixture) and a paper-scale
# BasisNet-MobileNetV3 with random weights generated here (bench/engine/make_mnv3.py), and
# the camera family's cam96 and cam224 (tools/train --spec, random weights, 3 classes:
# `export.py --random --spec camN`).
# Output: $BUILD/bench/engine/results.jsonl (raw) and results.md (table, ratios).
# Environment: BUILD, PYTHON, BENCH_SECONDS (per measurement, default 5), BENCH_ROUNDS
# (default 2), BENCH_THREADS (default "1 2"), BENCH_NETS (default "fmnist mnv3 mnv3f16 cam96 cam224";
# mnv3f16 = the same network with F16 bases, engine only: the peers run F32 weights),
# BENCH_FMNIST_MODEL (another .bnm for the fmnist slot), BENCH_OUT (output directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
THREADS=${BENCH_THREADS:-1 2}
NETS=${BENCH_NETS:-fmnist mnv3 mnv3f16 cam96 cam224}
OUT=${BENCH_OUT:-$BUILD/bench/engine}
HERE=bench/engine
mkdir -p "$OUT"

# OpenBLAS 0.3.21 does not recognize every CPU (a virtual "Intel Xeon Processor" got its
# SSE3 Prescott kernels): pick the kernels explicitly for every process of this benchmark.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
# torch: without these its OpenBLAS/OpenMP threads spin against each other (FACTS.md)
export OMP_WAIT_POLICY=PASSIVE

[ -x "$BUILD/basisnet" ] || make --no-print-directory "$BUILD/basisnet"
[ -x "$BUILD/tests/test_engine_parity" ] || make --no-print-directory "$BUILD/tests/test_engine_parity"
if [ ! -d "$HERE/node_modules/onnxruntime-node" ]; then
    (cd "$HERE" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund >/dev/null)
fi

model_for() {
    case $1 in
    fmnist) if [ -n "${BENCH_FMNIST_MODEL:-}" ]; then echo "$BENCH_FMNIST_MODEL"
            elif [ -e models/fmnist-basisnet.bnm ]; then echo models/fmnist-basisnet.bnm
            else echo tests/fixtures/random-tiny.bnm; fi ;;
    mnv3) echo "$OUT/mnv3.bnm" ;;
    mnv3f16) echo "$OUT/mnv3f16.bnm" ;;
    cam*) echo "$OUT/$1.bnm" ;;
    esac
}

RES=$OUT/results.jsonl
: > "$RES"
{
    echo "Command: \`${BENCH_COMMAND:-bench/engine/run.sh}\` (BENCH_SECONDS=$SECS BENCH_ROUNDS=$ROUNDS BENCH_THREADS=\"$THREADS\")"
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
         "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/header.md"
tag() { # net threads round: prefix JSON lines with the context
    "$PYTHON" -c 'import json,sys
net,th,rnd=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])
for line in sys.stdin:
    line=line.strip()
    if line.startswith("{"):
        d=json.loads(line); d.update(net=net, threads=th, round=rnd); print(json.dumps(d))' "$@"
}

for net in $NETS; do
    model=$(model_for "$net")
    if [ "$net" = mnv3 ] && [ ! -e "$model" ]; then
        "$PYTHON" $HERE/make_mnv3.py "$model" --golden 2
    fi
    if [ "$net" = mnv3f16 ] && [ ! -e "$model" ]; then
        "$PYTHON" $HERE/make_mnv3.py "$model" --golden 2 --f16-bases
    fi
    case $net in cam*) [ -e "$model" ] || "$PYTHON" tools/train/export.py --random --spec "$net" \
        --out "$model" >/dev/null ;; esac
    echo "== $net: $model"
    if [ "$net" != fmnist ]; then # the engine computes what torch computes on this network
        BN_PARITY_MODEL=$model BN_PARITY_GOLDEN=${model%.bnm}.golden.safetensors \
            "$BUILD/tests/test_engine_parity" 2>/dev/null | grep "^parity $model"
    fi
    peers=1
    [ "$net" = mnv3f16 ] && peers=0
    [ $peers = 1 ] && "$PYTHON" $HERE/peers.py export "$model" "$OUT/$net" >/dev/null 2>&1
    for round in $(seq 1 "$ROUNDS"); do
        for th in $THREADS; do
            echo "   round $round, $th thread(s)"
            "$BUILD/basisnet" bench "$model" --threads "$th" --seconds "$SECS" --json 2>/dev/null \
                | "$PYTHON" -c 'import json,sys
d=json.loads(sys.stdin.read())
for g,k in (("light_loop","light"),("specialist","synth_specialist"),("full","total"),("specialist_synth_run","specialist"),("synth","synth")):
    r=dict(d[k]); r.update(runtime="basisnet", graph=g, kernels=d["kernels"], cpu_ms_per_inference=d["cpu_ms_per_inference"],
        specialist_gflops=d["specialist_gflops"], light_gflops=d["light_gflops"], synth_gbytes_per_s=d["synth_gbytes_per_s"],
        synth_share_of_specialist=d["synth_share_of_specialist"], session_bytes=d["session_bytes"], madds=d["madds"])
    print(json.dumps(r))' | tag "$net" "$th" "$round" >> "$RES"
            # the specialist on reused weights: synthesis reuse on the fixed image keeps every layer
            "$BUILD/basisnet" bench "$model" --threads "$th" --seconds "$SECS" --json --synth-reuse 0.01 2>/dev/null \
                | "$PYTHON" -c 'import json,sys
d=json.loads(sys.stdin.read())
if d["layers_kept"] < 0.99:
    sys.exit("synthesis reuse kept only %.1f%% of the layers" % (100 * d["layers_kept"]))
r=dict(d["specialist"]); r.update(runtime="basisnet", graph="specialist_only", kernels=d["kernels"],
    specialist_gflops=d["specialist_gflops"], cpu_ms_per_inference=d["cpu_ms_per_inference"], layers_kept=d["layers_kept"])
print(json.dumps(r))' | tag "$net" "$th" "$round" >> "$RES"
            "$BUILD/basisnet" bench "$model" --threads "$th" --seconds "$SECS" --json --light-only 2>/dev/null \
                | "$PYTHON" -c 'import json,sys
d=json.loads(sys.stdin.read()); r=dict(d["light"]); r.update(runtime="basisnet", graph="light", kernels=d["kernels"])
print(json.dumps(r))' | tag "$net" "$th" "$round" >> "$RES"
            [ $peers = 1 ] || continue
            { node $HERE/ort_bench.js "$OUT/$net" --threads "$th" --seconds "$SECS" || echo "   onnxruntime failed" >&2; } \
                | tag "$net" "$th" "$round" >> "$RES"
            { OPENBLAS_NUM_THREADS=1 "$PYTHON" $HERE/peers.py torch "$model" --threads "$th" --seconds "$SECS" 2>/dev/null \
                || echo "   torchscript failed" >&2; } | tag "$net" "$th" "$round" >> "$RES"
            { "$PYTHON" $HERE/peers.py opencv "$OUT/$net" --threads "$th" --seconds "$SECS" 2>/dev/null \
                || echo "   opencv failed" >&2; } | tag "$net" "$th" "$round" >> "$RES"
        done
    done
done
{ cat "$OUT/header.md"; echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"; echo
  "$PYTHON" $HERE/summarize.py "$RES"; } > "$OUT/results.md"
cat "$OUT/results.md"
