#!/bin/bash
# Capture benchmark (`make bench`): CPU ms per frame of the project's capture (the GStreamer
# graph pipeline/capture builds + appsink hand-off + a consumer thread pulling frames) against
# a bare gst-launch-1.0 of exactly the same elements ending in fakesink, and the source alone.
# Input: 640x480 YUY2 from videotestsrc pattern=black (near-free to generate, unlike smpte at
# ~2 ms/frame); every variant runs as fast as it can (no clock sync).
# CPU = user+sys of the child (getrusage RUSAGE_CHILDREN, microsecond resolution); per frame = (CPU(N frames) - CPU(1 frame)) / (N - 1), so
# process start-up and plugin loading cancel out. Median of REPS runs. Asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=$BUILD/bench/capture
REPS=${REPS:-5}
N=${FRAMES:-6000}
mkdir -p "$OUT"
make --no-print-directory -s "$BUILD/libbnpipeline.a" "$BUILD/libbasisnet.a"
PKGS="gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 libv4l2"
cc -std=c17 -O2 -D_GNU_SOURCE -Iengine -Ipipeline -Idaemon $(pkg-config --cflags $PKGS) \
   -o "$OUT/capture_bench" bench/capture/capture_bench.c "$BUILD/libbnpipeline.a" \
   "$BUILD/libbasisnet.a" $(pkg-config --libs $PKGS) -pthread
gst-inspect-1.0 >/dev/null   # registry warm: no rescan inside a timed run

src() { echo "videotestsrc pattern=black num-buffers=$1 ! video/x-raw,format=YUY2,width=640,height=480,framerate=30/1"; }
cpu() {   # command...: prints the child's user+sys seconds (getrusage, microseconds)
    /usr/bin/python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.6f" % (u.ru_utime + u.ru_stime))
sys.exit(r.returncode)' "$@" 2>/dev/null || { echo "bench: $* failed" >&2; return 1; }
}
per_frame() {   # label, command with @N@ for the frame count
    local label=$1; shift
    local vals=()
    for r in $(seq "$REPS"); do
        local a b
        a=$(cpu bash -c "${*//@N@/$N}")
        b=$(cpu bash -c "${*//@N@/1}")
        vals+=("$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN{printf "%.4f", (a - b) * 1000 / (n - 1)}')")
    done
    printf '%s\n' "${vals[@]}" | sort -g | awk -v l="$label" '{v[NR]=$1} END{m=v[int((NR+1)/2)];
        printf "  %-34s %7.4f ms/frame (median of %d; min %.4f max %.4f)\n", l, m, NR, v[1], v[NR]}' \
        | tee -a "$OUT/results.txt"
}

: > "$OUT/results.txt"
echo "capture bench: $N frames 640x480 YUY2, $REPS runs each, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)" |
    tee -a "$OUT/results.txt"
for spec in "28 28 1" "224 224 3"; do
    read -r w h c <<<"$spec"
    desc=$("$OUT/capture_bench" describe "$w" "$h" "$c" "$(src 1)")
    conv=${desc#"$(src 1) ! "}
    bare_conv=${conv/appsink name=bnsink/fakesink sync=false}
    echo "to ${w}x${h}x${c}: ... ! $conv" | tee -a "$OUT/results.txt"
    per_frame "source alone (gst-launch)" "gst-launch-1.0 -q $(src @N@) ! fakesink sync=false"
    per_frame "bare gst-launch, same elements" "gst-launch-1.0 -q $(src @N@) ! $bare_conv"
    per_frame "project capture + consumer" "$OUT/capture_bench run $w $h $c '$(src @N@)'"
done
awk '/^to /{scen = $2}
     /source alone/{s = $(NF-8)}
     /bare gst-launch/{b = $(NF-8)}
     /project capture/{p = $(NF-8); r = (b - s > 0) ? (p - s) / (b - s) : 0
        printf("  %s conversion alone: bare %.4f, project %.4f ms/frame (project/bare %.2f); whole capture project/bare %.2f\n",
               scen, b - s, p - s, r, (b > 0) ? p / b : 0)}' "$OUT/results.txt" | tee -a "$OUT/results.txt"
echo "hand-off latency (live videotestsrc 640x480@30 -> 28x28x1, consumer waiting):" | tee -a "$OUT/results.txt"
"$OUT/capture_bench" latency 28 28 1 150 | sed 's/^/  /' | tee -a "$OUT/results.txt"

# The whole daemon at 640x480@30: videotestsrc pattern=black stands in for a camera (a real
# v4l2src costs little CPU: the driver fills the buffers; smpte would add ~2 ms/frame).
MODEL=models/fmnist-basisnet.bnm
what="shipped model"
[ -f "$MODEL" ] || { MODEL=tests/fixtures/random-tiny.bnm; what="random-weight test fixture, not the shipped model"; }
if [ -x "$BUILD/basisnetd" ]; then
    cat > "$OUT/daemon.yaml" <<YAML
camera: bench
model: $PWD/$MODEL
source: {kind: test, pattern: black, width: 640, height: 480, fps: 30}
publish: {socket: $PWD/$OUT/bench.sock}
YAML
    SECS=${DAEMON_SECONDS:-20}
    /usr/bin/python3 - "$BUILD/basisnetd" "$OUT/daemon.yaml" "$SECS" <<'PY' | tee -a "$OUT/results.txt"
import resource, signal, subprocess, sys, time
exe, cfg, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
t0 = time.monotonic()
p = subprocess.Popen([exe, "--config", cfg, "--print"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
time.sleep(secs)
p.send_signal(signal.SIGINT)
out, _ = p.communicate(timeout=30)
wall = time.monotonic() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = u.ru_utime + u.ru_stime
n = sum(1 for line in out.splitlines() if line.strip())
print(f"whole daemon, 640x480@30 test source -> model input: {n} frames classified in {wall:.1f} s, "
      f"CPU {cpu:.2f} s = {cpu / wall:.3f} cores ({cpu * 1000 / max(n, 1):.2f} ms/frame incl. start-up)")
PY
    echo "  (model: $MODEL, $what)" | tee -a "$OUT/results.txt"
fi
