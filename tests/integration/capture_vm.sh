#!/bin/bash
# make check: the real V4L2 device tests (tests/vm/run-vm-tests.sh: QEMU TCG guest with
# vivid; ~30-45 s here, up to ~2 min on a loaded machine). Needs qemu-system-x86 and
# busybox-static (tools/install-deps.sh installs them) and fetches Debian's kernel package
# once into build/vm. SKIP=capture_vm skips it for local runs.
set -u
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v busybox >/dev/null; then
    echo "capture_vm: qemu-system-x86_64 or busybox missing: run 'make deps' (tools/install-deps.sh)"
    exit 1
fi
# The guest runs host-built binaries; the sanitizer build (make asan) would only repeat it.
if [ "${BUILD:-build}" != build ]; then
    echo "SKIP: capture_vm runs in the plain build (BUILD=build) only; this is $BUILD"
    exit 77
fi
exec tests/vm/run-vm-tests.sh
