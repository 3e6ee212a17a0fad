#!/bin/sh
# Installs the Debian packages basisnetd needs to build, test and run. Idempotent: only
# missing packages are installed. Works as root or through sudo; non-interactive.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev
libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-tools
python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 libv4l-dev v4l-utils
libyaml-dev libsystemd-dev libcmocka-dev libjansson-dev libopenblas-dev libopenblas0-pthread
libmosquitto-dev mosquitto mosquitto-clients libsoup-3.0-dev libcrypt-dev openssl curl chromium libpng-dev libjpeg-dev zlib1g-dev
python3-torch python3-numpy python3-matplotlib python3-pil python3-opencv dataset-fashion-mnist
systemd-container stress-ng qemu-system-x86 busybox-static man-db groff-base
debhelper dpkg-dev fakeroot lintian debootstrap graphviz"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all $(echo $PKGS | wc -w) packages present"
    exit 0
fi
echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps: not root and sudo is not installed: run 'make deps' as root (su -)" >&2
        exit 1
    }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the lists only when the install fails with stale or missing lists.
$SUDO apt-get install -y -q --no-install-recommends $missing || {
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends $missing
}
