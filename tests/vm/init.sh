#!/bin/busybox sh
# /init of the VM test initramfs: mount the host root (9p, read-only) under a tmpfs overlay,
# load vivid, run tests/vm/guest-tests.sh from the host tree, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ROOT=$(sed -n 's/.*bn_root=\([^ ]*\).*/\1/p' /proc/cmdline)
BIN=$(sed -n 's/.*bn_bin=\([^ ]*\).*/\1/p' /proc/cmdline)
SCRIPT=$(sed -n 's/.*bn_script=\([^ ]*\).*/\1/p' /proc/cmdline)
for m in /modules/*.ko; do insmod "$m" || echo "init: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /host ||
    { echo "VM-TESTS: FAIL (cannot mount the host root)"; poweroff -f; }
mount -t tmpfs -o size=512m tmpfs /ovl
mkdir -p /ovl/upper /ovl/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/ovl/upper,workdir=/ovl/work /newroot ||
    { echo "VM-TESTS: FAIL (overlay)"; poweroff -f; }
for m in $(cat /vivid-chain); do insmod "/newroot$m" 2>/dev/null; done
# One capture node (node_types=1), one webcam input: /dev/video0 is what a USB camera would be.
insmod "/newroot$(cat /vivid-ko)" n_devs=1 node_types=0x1 num_inputs=1 input_types=0 ||
    echo "init: vivid already loaded or failed"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
# The guest gets its own /tmp and /run (tmpfiles would otherwise walk the host's over 9p),
# but the tree under test may live there (CI clones anywhere): set its overlay view aside
# first and put it back at the same path on top of the new tmpfs.
keep=""
for d in "$ROOT" "$BIN"; do
    case "$d" in /tmp/*|/run/*) keep="$keep $d" ;; esac
done
i=0
for d in $keep; do
    i=$((i + 1)); mkdir -p "/keep$i"; mount -o bind "/newroot$d" "/keep$i"
done
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
i=0
for d in $keep; do
    i=$((i + 1)); mkdir -p "/newroot$d"; mount -o move "/keep$i" "/newroot$d" ||
        echo "init: cannot keep $d visible"
done
chroot /newroot /bin/bash "${SCRIPT:-$ROOT/tests/vm/guest-tests.sh}" "$ROOT" "$BIN"
echo "init: guest tests exited $?"
sync
poweroff -f
