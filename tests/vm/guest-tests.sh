#!/bin/bash
# Runs inside the QEMU guest (tests/vm/run-vm-tests.sh), as root in an overlay of the host
# root, with vivid providing /dev/video0. Prints "ok:"/"FAIL:" lines and a final
# "VM-TESTS: PASS" or "VM-TESTS: FAIL (n)".
ROOT=${1:-/work/main}
cd "$ROOT" || { echo "VM-TESTS: FAIL (no $ROOT)"; exit 1; }
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C
B=${2:-build/vm}   # this run's vm_capture and basisnet (run-vm-tests.sh)
DEV=/dev/video0
failed=0
T0=$(date +%s%N)

step() { echo; echo "=== $* ($(( ($(date +%s%N) - T0) / 1000000 )) ms)"; }
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
expect_in() {   # file, text, what
    if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3 (no '$2')"; fi
}

step "device"
ls -l /dev/video* 2>&1
[ -c $DEV ] && ok "$DEV exists" || bad "$DEV missing (vivid not loaded?)"

step "basisnet probe $DEV"
$B/basisnet probe $DEV > /tmp/probe.txt 2>&1; rc=$?
head -12 /tmp/probe.txt; echo "  ..."; grep -A3 '^  controls' /tmp/probe.txt; tail -1 /tmp/probe.txt
[ $rc -eq 0 ] && ok "probe exit 0" || bad "probe exit $rc"
expect_in /tmp/probe.txt "(driver vivid" "probe names the vivid driver"
expect_in /tmp/probe.txt "YUYV" "probe lists YUYV"
expect_in /tmp/probe.txt "640x480" "probe lists 640x480"
expect_in /tmp/probe.txt "brightness" "probe lists the brightness control"
# vivid's webcam input offers 640x480 up to 25 fps: the rate wins over the size at 30 fps.
expect_in /tmp/probe.txt "basisnetd would capture 640x480@30 as: video/x-raw,format=YUY2,width=640,height=360,framerate=30/1" \
    "probe chooses YUYV 640x360@30 for 640x480@30 (rate before size)"
$B/basisnet probe --fps 25 $DEV > /tmp/probe25.txt 2>&1
expect_in /tmp/probe25.txt "basisnetd would capture 640x480@25 as: video/x-raw,format=YUY2,width=640,height=480,framerate=25/1" \
    "probe chooses YUYV 640x480@25 for 640x480@25"

step "basisnet probe (all nodes)"
$B/basisnet probe > /tmp/probe-all.txt 2>&1; cat /tmp/probe-all.txt
expect_in /tmp/probe-all.txt "$DEV: vivid" "device list names $DEV as vivid"

step "capture frames from $DEV"
$B/vm_capture frames $DEV 30 2>&1 | tee /tmp/frames.txt
[ ${PIPESTATUS[0]} -eq 0 ] || bad "vm_capture frames"

step "controls"
$B/vm_capture controls $DEV 2>&1 | tee /tmp/controls.txt
[ ${PIPESTATUS[0]} -eq 0 ] || bad "vm_capture controls"

step "no format fits (vivid has no MJPEG)"
BN_FORMAT=mjpeg $B/vm_capture open $DEV > /tmp/nofit.txt 2>&1
cut -c1-300 /tmp/nofit.txt
expect_in /tmp/nofit.txt "unsupported: no capture format of '$DEV' (vivid) fits 640x480@25 mjpeg; it offers: YUYV 320x180@60, YUYV 640x360@40, YUYV 640x480@25" \
    "format: mjpeg on a raw-only device lists what it offers"

step "permission denied names the group"
chgrp video $DEV && chmod 0660 $DEV
vid=$(getent group video | cut -d: -f3)
setpriv --reuid=65534 --regid=65534 --clear-groups $B/basisnet probe $DEV > /tmp/perm.txt 2>&1; rc=$?
cat /tmp/perm.txt
[ $rc -eq 1 ] && ok "probe as nobody fails (exit 1)" || bad "probe as nobody: exit $rc"
expect_in /tmp/perm.txt "add the user to group 'video'" "message names group 'video'"
setpriv --reuid=65534 --regid=65534 --groups="$vid" $B/basisnet probe $DEV > /tmp/perm2.txt 2>&1 &&
    ok "same user in group video can probe" || bad "probe as nobody+video failed: $(head -2 /tmp/perm2.txt)"
chmod 0666 $DEV

step "busy device"
gst-launch-1.0 -q v4l2src device=$DEV io-mode=mmap ! video/x-raw,width=320,height=180,framerate=30/1 ! fakesink > /tmp/gst-busy.txt 2>&1 &
gpid=$!
# Streaming once its buffers are mapped; asking earlier would race its own negotiation.
for i in $(seq 150); do grep -q "$DEV" /proc/$gpid/maps 2>/dev/null && break; sleep 0.2; done
$B/vm_capture open $DEV > /tmp/busy.txt 2>&1
cat /tmp/busy.txt
expect_in /tmp/busy.txt "busy: device '$DEV' is busy: another process is streaming from it" "second user gets 'busy'"
kill $gpid 2>/dev/null; wait $gpid 2>/dev/null

step "unplug: streaming error + node removed, then back"
export BN_UNPLUG_CMD="mv $DEV /dev/.video0-away"
export BN_REPLUG_CMD="sleep 1.5; mv /dev/.video0-away $DEV"
$B/vm_capture unplug $DEV 2>&1 | tee /tmp/unplug.txt
[ ${PIPESTATUS[0]} -eq 0 ] || bad "vm_capture unplug"
[ -c $DEV ] || mv /dev/.video0-away $DEV

step "descriptor leak check (informational: GStreamer's v4l2src)"
$B/vm_capture leakcheck $DEV 2>&1 | grep -v '^\[' | tee /tmp/leak.txt
grep -q '^FAIL' /tmp/leak.txt && bad "probe leaves a descriptor open"

# The daemon's own pipeline on the camera: the shipped model when it is built, else the
# random-weight test fixture (labels are then meaningless; the path is what is tested).
MODEL=$(sed -n 's/^model: *\.\.\/\(.*\)/\1/p' configs/camera.yaml 2>/dev/null)
[ -n "$MODEL" ] && [ -f "$MODEL" ] || MODEL=tests/fixtures/random-tiny.bnm
if [ -x build/basisnetd ] && [ -f configs/camera.yaml ] && [ -f "$MODEL" ]; then
    step "basisnetd classifies frames from $DEV (model $MODEL)"
    sed -e "s|/dev/video[0-9]*|$DEV|; s|^model:.*|model: ../$MODEL|; s|^\( *socket:\).*|\1 /tmp/bn-vm.sock|" \
        -e "s|^\( *group:\).*|\1 \"\"|; s|^\( *fps:\).*|\1 25|" configs/camera.yaml > configs/.vm-camera.yaml
    # until 11 frames are printed or 60 s pass (software emulation on a loaded host can take
    # most of that to start GStreamer), then a clean stop
    build/basisnetd --config configs/.vm-camera.yaml --print > /tmp/daemon.out 2> /tmp/daemon.err &
    dpid=$!
    for _ in $(seq 120); do
        [ "$(grep -c . /tmp/daemon.out)" -gt 10 ] && break
        kill -0 $dpid 2>/dev/null || break
        sleep 0.5
    done
    kill -INT $dpid 2>/dev/null; wait $dpid 2>/dev/null || true
    head -3 /tmp/daemon.out; grep -iE "pipeline|error|lost" /tmp/daemon.err | head -5
    n=$(grep -c . /tmp/daemon.out)
    [ "$n" -gt 10 ] && ok "basisnetd printed $n classified frames from $DEV" ||
        { tail -5 /tmp/daemon.err; bad "basisnetd printed $n lines"; }
else
    step "basisnetd on $DEV: skipped (needs build/basisnetd, configs/camera.yaml and a model)"
fi

grep -h '^FAIL' /tmp/frames.txt /tmp/controls.txt /tmp/unplug.txt 2>/dev/null | sed 's/^/  /'
echo
if [ $failed -eq 0 ]; then echo "VM-TESTS: PASS ($(( ($(date +%s%N) - T0) / 1000000 )) ms in the guest)"
else echo "VM-TESTS: FAIL ($failed)"; fi
