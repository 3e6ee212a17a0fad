#!/bin/bash
# Real V4L2 device tests: boots Debian's kernel under QEMU TCG with vivid loaded, shares the
# host root read-only over 9p under a tmpfs overlay (so the freshly built binaries run at
# their host paths) and runs tests/vm/guest-tests.sh inside. `make vm-check`.
#
# Needs (tools/install-deps.sh does not install them: this test is not part of make check):
#   apt-get install qemu-system-x86 busybox-static
# and fetches Debian's linux-image and kmod packages with `apt-get download` into build/vm
# (cached). VM_SCRIPT=/abs/path runs that script in the guest instead (debugging). Exit 0 when every guest check passed; prints the guest's console.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VM=${VM_DIR:-$ROOT/build/vm}
BUILD=${BUILD:-build}
TIMEOUT=${VM_TIMEOUT:-300}
t_start=$(date +%s)

die() { echo "vm-check: $*" >&2; exit 1; }
for tool in qemu-system-x86_64 busybox; do
    command -v $tool >/dev/null || die "$tool missing: apt-get install qemu-system-x86 busybox-static"
done
busybox --list | grep -x cpio >/dev/null || die "busybox without cpio: apt-get install busybox-static"

# ---- kernel, modules, depmod (cached) --------------------------------------------------------
# Several engineers may run `make check` at once in this checkout: the cache is built under a
# lock, and each run keeps its binaries and console log in its own directory.
mkdir -p "$VM/debs"
exec 9>"$VM/.lock"
flock 9
if ! ls "$VM"/debs/linux-image-*.deb >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ && !p {print $2; p = 1}')
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
    (cd "$VM/debs" && apt-get download "$pkg") || die "apt-get download $pkg failed"
fi
if ! ls "$VM"/debs/kmod_*.deb >/dev/null 2>&1; then
    (cd "$VM/debs" && apt-get download kmod) || die "apt-get download kmod failed"
fi
if [ ! -d "$VM/kernel/lib/modules" ]; then
    rm -rf "$VM/kernel" && mkdir -p "$VM/kernel"
    dpkg-deb -x "$VM"/debs/linux-image-*.deb "$VM/kernel"
fi
if [ ! -x "$VM/kmod/bin/kmod" ]; then
    rm -rf "$VM/kmod" && mkdir -p "$VM/kmod"
    dpkg-deb -x "$VM"/debs/kmod_*.deb "$VM/kmod"
fi
KVER=$(ls "$VM/kernel/lib/modules" | head -1)
MODDIR=$VM/kernel/lib/modules/$KVER
[ -s "$MODDIR/modules.dep" ] || (exec -a depmod "$VM/kmod/bin/kmod" -b "$VM/kernel" "$KVER")

# PVH boot of the uncompressed kernel: ~6 s to init instead of ~13 s for bzImage.
if [ ! -s "$VM/vmlinux" ]; then
    /usr/bin/python3 - "$VM/kernel/boot/vmlinuz-$KVER" "$VM/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
off = data.find(b"\xfd7zXZ\x00")
if off < 0:
    sys.exit("no xz payload in " + sys.argv[1])
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
if out[:4] != b"\x7fELF":
    sys.exit("xz payload is not an ELF kernel")
open(sys.argv[2], "wb").write(out)
EOF
fi

# ---- initramfs: busybox, the 9p/overlay modules, /init -----------------------------------------
INITRD=$VM/initramfs.cpio.gz
if [ ! -s "$INITRD" ] || [ tests/vm/init.sh -nt "$INITRD" ] || [ "$0" -nt "$INITRD" ]; then
    rm -rf "$VM/initramfs" && mkdir -p "$VM/initramfs"/{bin,modules,proc,sys,dev,host,ovl,newroot}
    cp "$(command -v busybox)" "$VM/initramfs/bin/busybox"
    # Load order from modules.dep: each module's dependencies (listed leaf-last), then itself.
    n=0
    for target in virtio_pci 9pnet_virtio 9p overlay; do
        line=$(grep "/$target.ko:" "$MODDIR/modules.dep") || die "$target.ko not in modules.dep"
        for d in $(echo "${line#*:}" | tr ' ' '\n' | tac) "${line%%:*}"; do
            m=$(basename "$d" .ko)
            ls "$VM/initramfs/modules/"*-"$m.ko" >/dev/null 2>&1 && continue
            n=$((n + 1)); cp "$MODDIR/$d" "$VM/initramfs/modules/$(printf %02d $n)-$m.ko"
        done
    done
    # vivid and its dependencies in load order (modules.dep lists them leaf-last).
    dep=$(grep '/vivid.ko:' "$MODDIR/modules.dep" | cut -d: -f2)
    : > "$VM/initramfs/vivid-chain"
    for d in $(echo $dep | tr ' ' '\n' | tac); do echo "$MODDIR/$d" >> "$VM/initramfs/vivid-chain"; done
    echo "$MODDIR/$(grep -o '^[^:]*/vivid.ko' "$MODDIR/modules.dep")" > "$VM/initramfs/vivid-ko"
    cp tests/vm/init.sh "$VM/initramfs/init" && chmod +x "$VM/initramfs/init"
    (cd "$VM/initramfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD"
fi

flock -u 9

# ---- what the guest runs --------------------------------------------------------------------
RUN=$(mktemp -d "$VM/run.XXXXXX")
chmod 0755 "$RUN"   # the guest runs the probe as nobody too
trap 'rm -rf "$RUN"' EXIT
make --no-print-directory -s $BUILD/libbnpipeline.a $BUILD/libbasisnet.a
PKGS="gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 libv4l2"
cc -std=c17 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -Iengine -Ipipeline -Idaemon \
   $(pkg-config --cflags $PKGS) -o "$RUN/vm_capture" tests/vm/vm_capture.c \
   $BUILD/libbnpipeline.a $BUILD/libbasisnet.a $(pkg-config --libs $PKGS) -pthread
make --no-print-directory -s $BUILD/basisnet
cp $BUILD/basisnet "$RUN/basisnet"
# The guest reuses this registry: a rescan under TCG costs ~15 s.
gst-inspect-1.0 >/dev/null

t_prep=$(date +%s)
LOG=$VM/console.log   # the last run's console, kept for reading
RUNLOG=$RUN/console.log
echo "vm-check: booting $KVER under QEMU TCG (prep $((t_prep - t_start)) s)"
set +e
timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 \
    -nodefaults -no-reboot -display none -serial stdio \
    -kernel "$VM/vmlinux" -initrd "$INITRD" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4 bn_root=$ROOT bn_bin=$RUN ${VM_SCRIPT:+bn_script=$VM_SCRIPT}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    </dev/null 2>&1 | tee "$RUNLOG"
qrc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s)
echo "vm-check: qemu exit $qrc, boot+tests $((t_end - t_prep)) s, total $((t_end - t_start)) s"
cp "$RUNLOG" "$LOG"
grep -q '^VM-TESTS: PASS' "$RUNLOG" && { echo "vm-check: PASS"; exit 0; }
grep -E '^(FAIL|VM-TESTS)' "$RUNLOG" || echo "vm-check: the guest did not report (timeout ${TIMEOUT}s?)"
echo "vm-check: FAIL (console in $LOG)"
exit 1
