#!/bin/bash
# The Debian packages under a real systemd: `make deb` (lintian included) on a snapshot of
# the tree, then in a fresh Debian 12 container booted with systemd-nspawn: apt install
# ./basisnetd_*.deb (the dependencies come from the archive) -> installed disabled and
# stopped, user, group and /run/basisnetd created -> configured and enabled: READY, labels
# on the socket -> config edited, systemctl reload -> basisnetd@test from the shipped test.yaml -> a newer build
# (VERSION+test1, both conffiles changed upstream) installed over it: the edited conffile
# kept (the new one beside it as .dpkg-dist), the unedited one updated, the service and the
# instance restarted -> apt remove keeps /etc/basisnetd and the user -> apt purge removes the
# user, the group, /etc/basisnetd, /run/basisnetd and the enablement.
# Run by `make check-package` (too slow for `make check`: two package builds and a
# debootstrap on a machine without the cached root). Needs root, systemd-nspawn, unshare,
# debootstrap, dpkg-buildpackage and the Debian archive (`make deps` installs the tools);
# exits 77 when a tool is missing.
# Environment: BN_ROOTFS_CACHE (default /var/cache/basisnetd-tests): the debootstrapped
# root, built once and reused (delete it to rebuild).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/integration/nspawn_common.bash"
for tool in debootstrap dpkg-buildpackage dh lintian; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (make deps)"; exit 77; }
done
nspawn_enter "$@"
cd "$ROOT"
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }

nspawn_workdir bnd-package
mount -t tmpfs tmpfs /run                    # the host's /run is on disk
mount -t tmpfs tmpfs "$W"

# ---- the packages: this tree's build, and a newer one -------------------------------------
# Both from one snapshot of the tree (the file set of tools/build-deb.sh: what `make` builds
# from), so that edits made meanwhile in the work tree cannot make the two builds differ.
snap=$W/basisnetd-src
mkdir -p "$snap"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    case /$f in */node_modules/*) continue;; esac
    [ -e "$f" ] && printf '%s\0' "$f"
done | tar -c --null -T - -f - | tar -x -C "$snap"
V1=$(cd "$snap" && dpkg-parsechangelog -S Version)
V2=$V1+test1
DEB=$snap/build/deb
make -C "$snap" --no-print-directory deb > "$W/build1.log" 2>&1 || { tail -n 40 "$W/build1.log"; fail "make deb"; }
grep -E '^[EWI]: ' "$W/build1.log" | sed 's/^/lintian: /' || true
ok "make deb $V1, lintian clean ($(elapsed))"

# The newer build: a changelog entry on top and both conffiles changed upstream; unit tests
# skipped (they ran in the first build).
src2=$W/basisnetd-$V2
mkdir -p "$src2"
tar -c -C "$snap" --exclude=./build -f - . | tar -x -C "$src2"
{ printf 'basisnetd (%s) unstable; urgency=medium\n\n  * Test rebuild.\n\n' "$V2"
  printf ' -- basisnetd developers <basisnetd@basisnetd.invalid>  %s\n\n' "$(date -R)"
  cat "$snap/debian/changelog"; } > "$src2/debian/changelog"
echo "# upstream change in $V2" >> "$src2/configs/camera.yaml"
echo "# upstream change in $V2" >> "$src2/configs/test.yaml"
(cd "$src2" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b -jauto) > "$W/build2.log" 2>&1 \
    || { tail -n 40 "$W/build2.log"; fail "build $V2"; }
mkdir -p "$W/debs"
cp "$DEB/basisnetd_${V1}_amd64.deb" "$W/basisnetd_${V2}_amd64.deb" "$W/debs/"
ok "built $V2 ($(elapsed))"

# ---- a fresh Debian 12 root ----------------------------------------------------------------
# Debian's own sources of this machine (the archive the packages' dependencies come from).
sources=$(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' \
          'Created-By: Packages' 'Component: main' | awk '$2 ~ /^bookworm/' | sort -u)
mirror=$(awk '$2 == "bookworm" {print $1; exit}' <<<"$sources")
[ -n "$mirror" ] || fail "no bookworm main in this machine's apt sources (apt-get update?)"
CACHE=${BN_ROOTFS_CACHE:-/var/cache/basisnetd-tests}
BASE=$CACHE/bookworm-systemd
if [ ! -f "$BASE/.basisnetd-rootfs" ]; then
    rm -rf "$BASE.new"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --include=systemd,systemd-sysv \
        bookworm "$BASE.new" "$mirror" > "$W/debootstrap.log" 2>&1 \
        || { tail -n 20 "$W/debootstrap.log"; fail "debootstrap"; }
    echo "debootstrap --variant=minbase --include=systemd,systemd-sysv bookworm" > "$BASE.new/.basisnetd-rootfs"
    rm -rf "$BASE" && mv "$BASE.new" "$BASE"
    ok "debootstrap bookworm into $BASE ($(elapsed))"
fi
mkdir -p "$W/upper" "$W/work" "$W/root"
mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$W/upper,workdir=$W/work" "$W/root"
R=$W/root
while read -r site release component; do
    echo "deb $site $release $component"
done <<<"$sources" > "$R/etc/apt/sources.list"
# Packages this machine has downloaded already are used from its cache (copy-on-write).
mkdir -p "$W/apt-upper" "$W/apt-work"
mount -t overlay overlay \
    -o "lowerdir=/var/cache/apt/archives,upperdir=$W/apt-upper,workdir=$W/apt-work" \
    "$R/var/cache/apt/archives"
mkdir -p "$R/srv/debs" && cp "$W"/debs/*.deb "$R/srv/debs/"
nspawn_boot

export DEBIAN_FRONTEND=noninteractive
apt_ct() { in_ct env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Options::=--force-confdef \
               -o Dpkg::Options::=--force-confold "$@"; }
in_ct apt-get -q update > "$W/apt-update.log" 2>&1 || { cat "$W/apt-update.log"; fail "apt-get update"; }
in_ct dpkg-query -W basisnetd 2>/dev/null && fail "basisnetd already in the fresh root"

# ---- install ---------------------------------------------------------------------------------
apt_ct install --no-install-recommends "/srv/debs/basisnetd_${V1}_amd64.deb" > "$W/install.log" 2>&1 \
    || { tail -n 30 "$W/install.log"; fail "apt install basisnetd_${V1}"; }
echo "apt install: $(grep -oE '[0-9]+ newly installed' "$W/install.log" || true) ($(elapsed))"
[ "$(in_ct dpkg-query -W -f '${Status} ${Version}' basisnetd)" = "install ok installed $V1" ] || fail "dpkg status"
in_ct getent passwd basisnetd >/dev/null || fail "no user basisnetd"
in_ct id -nG basisnetd | grep -qw video || fail "basisnetd not in group video"
[ "$(in_ct stat -c '%U:%G %a' /run/basisnetd)" = "basisnetd:basisnetd 755" ] || fail "/run/basisnetd: $(in_ct stat -c '%U:%G %a' /run/basisnetd 2>&1)"
[ "$(in_ct systemctl is-enabled basisnetd)" = disabled ] || fail "installed $(in_ct systemctl is-enabled basisnetd), want disabled"
[ "$(in_ct systemctl is-active basisnetd || true)" = inactive ] || fail "started on install"
grep -q "basisnetd.service is a disabled or a static unit, not starting it" "$W/install.log" \
    || fail "postinst did not decline to start the disabled unit"
conff=$(in_ct dpkg-query -W -f '${Conffiles}' basisnetd | awk '{print $1}' | sort | tr '\n' ' ')
[ "$conff" = "/etc/basisnetd/basisnetd.yaml /etc/basisnetd/test.yaml " ] || fail "conffiles: $conff"
in_ct systemd-analyze verify --man=no /lib/systemd/system/basisnetd.service /lib/systemd/system/basisnetd@.service || fail "systemd-analyze verify"
for f in /usr/bin/basisnetd /usr/bin/basisnetctl /usr/bin/basisnet /usr/share/basisnetd/models/fmnist-basisnet.bnm \
         /usr/share/man/man8/basisnetd.8.gz /usr/share/doc/basisnetd/daemon.md; do
    in_ct test -f "$f" || fail "not installed: $f"
done
ok "installed $V1: disabled and stopped, user in group video, /run/basisnetd, 2 conffiles, units verify"

# ---- configure, enable, READY, labels -----------------------------------------------------------
# The admin's edit: no camera in the container, so the test source.
in_ct sed -i 's/^camera: cam0$/camera: pkgtest/; s/^  kind: v4l2$/  kind: test/; s/^  width: 640$/  width: 160/; s/^  height: 480$/  height: 120/; s/^  format: auto .*$//' /etc/basisnetd/basisnetd.yaml
in_ct grep -q '^camera: pkgtest$' /etc/basisnetd/basisnetd.yaml || fail "config edit"
in_ct basisnetd --check-config /etc/basisnetd/basisnetd.yaml >/dev/null || fail "edited config does not check: $(in_ct basisnetd --check-config /etc/basisnetd/basisnetd.yaml 2>&1)"
in_ct systemctl enable --now basisnetd 2>/dev/null || fail "systemctl enable --now"
[ "$(in_ct systemctl is-active basisnetd)" = active ] || fail "not active"
in_ct journalctl -u basisnetd --no-pager | grep -q "ready (first frame classified)" || fail "no READY after the first frame"
n=$(in_ct basisnetctl subscribe --count 5 | grep -c '"type":"label"' || true)
[ "$n" -eq 5 ] || fail "subscribe got $n labels"
ok "enabled and started: READY, 5 labels from basisnetctl subscribe"

pid0=$(in_ct systemctl show -p MainPID --value basisnetd)
in_ct sed -i 's/^camera: pkgtest$/camera: pkgtest2/' /etc/basisnetd/basisnetd.yaml
in_ct systemctl reload basisnetd || fail "reload"
in_ct basisnetctl stats | grep -q '"camera": "pkgtest2"' || fail "reload did not apply the new camera name"
[ "$(in_ct systemctl show -p MainPID --value basisnetd)" = "$pid0" ] || fail "reload restarted the process"
ok "config edited, systemctl reload applied it (same pid $pid0)"

in_ct systemctl start basisnetd@test || fail "start basisnetd@test (shipped /etc/basisnetd/test.yaml)"
in_ct basisnetctl --socket /run/basisnetd/test.sock subscribe --count 1 | grep -q '"type":"label"' || fail "basisnetd@test labels"
ipid0=$(in_ct systemctl show -p MainPID --value basisnetd@test)
ok "basisnetd@test runs on the shipped test.yaml"

# ---- upgrade ----------------------------------------------------------------------------------
edited=$(in_ct md5sum /etc/basisnetd/basisnetd.yaml)
apt_ct install --no-install-recommends "/srv/debs/basisnetd_${V2}_amd64.deb" > "$W/upgrade.log" 2>&1 \
    || { tail -n 30 "$W/upgrade.log"; fail "apt install basisnetd_${V2}"; }
[ "$(in_ct dpkg-query -W -f '${Version}' basisnetd)" = "$V2" ] || fail "not upgraded"
[ "$(in_ct md5sum /etc/basisnetd/basisnetd.yaml)" = "$edited" ] || fail "the edited conffile was replaced"
in_ct grep -q "upstream change in $V2" /etc/basisnetd/basisnetd.yaml.dpkg-dist || fail "no basisnetd.yaml.dpkg-dist with the new version"
in_ct grep -q "upstream change in $V2" /etc/basisnetd/test.yaml || fail "the unedited test.yaml was not updated"
pid1=$(in_ct systemctl show -p MainPID --value basisnetd)
[ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] || fail "basisnetd not restarted by the upgrade (pid $pid0 -> $pid1)"
[ "$(in_ct systemctl is-active basisnetd)" = active ] || fail "basisnetd not active after the upgrade"
ipid1=$(in_ct systemctl show -p MainPID --value basisnetd@test)
[ "$ipid1" != "$ipid0" ] && [ "$ipid1" != 0 ] || fail "basisnetd@test not restarted by the upgrade"
n=$(in_ct basisnetctl subscribe --count 3 | grep -c '"type":"label"' || true)
[ "$n" -eq 3 ] || fail "after the upgrade: subscribe got $n labels"
in_ct basisnetctl stats | grep -q '"camera": "pkgtest2"' || fail "after the upgrade: not the edited config"
ok "upgrade to $V2: edited basisnetd.yaml kept (.dpkg-dist beside it), test.yaml updated, pid $pid0 -> $pid1, instance restarted ($(elapsed))"

# ---- remove, purge ---------------------------------------------------------------------------
apt_ct remove basisnetd > "$W/remove.log" 2>&1 || { tail -n 30 "$W/remove.log"; fail "apt remove"; }
[ "$(in_ct dpkg-query -W -f '${Status}' basisnetd)" = "deinstall ok config-files" ] || fail "status after remove"
in_ct test ! -e /usr/bin/basisnetd || fail "remove left /usr/bin/basisnetd"
for u in basisnetd basisnetd@test; do
    [ "$(in_ct systemctl is-active $u || true)" = inactive ] || fail "$u still running after remove"
done
[ "$(in_ct md5sum /etc/basisnetd/basisnetd.yaml)" = "$edited" ] || fail "remove did not keep the edited config"
in_ct getent passwd basisnetd >/dev/null || fail "remove deleted the user"
ok "apt remove: stopped, programs gone, /etc/basisnetd and the user kept"

apt_ct purge basisnetd > "$W/purge.log" 2>&1 || { tail -n 30 "$W/purge.log"; fail "apt purge"; }
in_ct dpkg-query -W -f '${Status}' basisnetd 2>/dev/null | grep -q installed && fail "still known to dpkg after purge"
for p in /etc/basisnetd /run/basisnetd /etc/systemd/system/multi-user.target.wants/basisnetd.service; do
    in_ct test ! -e "$p" || fail "purge left $p"
done
in_ct getent passwd basisnetd >/dev/null && fail "purge left the user basisnetd"
in_ct getent group basisnetd >/dev/null && fail "purge left the group basisnetd"
ok "apt purge: user, group, /etc/basisnetd, /run/basisnetd and the enablement removed"
echo "package_nspawn: all passed in $(elapsed)"
