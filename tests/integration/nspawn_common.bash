# Shared by the systemd-nspawn tests (sourced, not run: tests/run-tests.sh runs only *.sh).
#
# nspawn_enter "$@": first thing in a test. Without root, systemd-nspawn or unshare it prints
# SKIP and exits 77 (counted as skipped; a skip fails `make check` unless allowed); otherwise it re-runs the test script in a private mount
# namespace, so that every mount below goes away with it.
nspawn_enter() {
    if [ "$(id -u)" -ne 0 ] || ! command -v systemd-nspawn >/dev/null || ! command -v unshare >/dev/null; then
        echo "SKIP: needs root, systemd-nspawn and unshare"; exit 77
    fi
    if [ "${BN_IN_UNSHARE:-}" != 1 ]; then
        BN_IN_UNSHARE=1 exec unshare -m --propagation private bash "$0" "$@"
    fi
}

# nspawn_workdir NAME: W, a fresh directory /tmp/NAME.XXXXXX, removed (with the container's
# mounts, after stopping the container) on exit by nspawn_cleanup. A test with more to clean
# up traps its own function that ends by calling nspawn_cleanup.
nspawn_workdir() {
    W=$(mktemp -d "/tmp/$1.XXXXXX")
    NP=
    trap nspawn_cleanup EXIT
}
nspawn_cleanup() {
    if [ -n "$NP" ] && kill -0 "$NP" 2>/dev/null; then kill -TERM "$NP"; wait "$NP" 2>/dev/null || true; fi
    umount -l "$W/root" 2>/dev/null || true
    umount -l "$W" 2>/dev/null || true
    rm -rf "$W"
}

# fail MESSAGE: the test fails, with the daemon's journal when the container is up.
fail() {
    echo "FAIL: $*" >&2
    [ -n "${LEADER:-}" ] && in_ct journalctl -u 'basisnetd*' --no-pager -n 40 >&2 || true
    exit 1
}
ok() { echo "ok: $*"; }
# in_ct COMMAND...: runs COMMAND inside the booted container (needs LEADER, set by nspawn_boot).
# -r -w: the container's root and working directory; entering its mount namespace alone
# keeps the caller's root when the tests run in a chroot (then systemctl saw no systemd).
in_ct() { nsenter -t "$LEADER" -a -r -w "$@"; }

# nspawn_prepare_root: an overlay of the host root in $W with the project installed into it
# as a package would do it. Needs ROOT, BUILD and W; sets R (the container's root) and MODEL
# (the model the test installs as /usr/local/share/basisnetd/models/test.bnm: $BN_TEST_MODEL,
# else the shipped model, else the random-weight fixture).
nspawn_prepare_root() {
    mount -t tmpfs tmpfs /run                    # the host's /run is on disk
    mount -t tmpfs tmpfs "$W"
    mkdir -p "$W/upper" "$W/work" "$W/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$W/root"
    R=$W/root
    rm -f "$R/.dockerenv"

    # `make install` as a package would do it
    local sanflags=()
    grep -q __asan_init "$ROOT/$BUILD/basisnetd" 2>/dev/null && sanflags=(SAN=1 OPT=-O1)
    make -C "$ROOT" -s install DESTDIR="$R" PREFIX=/usr/local BUILD="$BUILD" "${sanflags[@]}" >/dev/null
    [ -f "$R/usr/local/lib/systemd/system/basisnetd.service" ] || fail "install: no unit"
    [ -f "$R/usr/local/lib/sysusers.d/basisnetd.conf" ] || fail "install: no sysusers"
    [ -f "$R/usr/local/lib/tmpfiles.d/basisnetd.conf" ] || fail "install: no tmpfiles"
    grep -q "^ExecStart=/usr/local/bin/basisnetd " "$R/usr/local/lib/systemd/system/basisnetd.service" \
        || fail "@BINDIR@ not substituted"
    MODEL=${BN_TEST_MODEL:-$ROOT/models/fmnist-basisnet.bnm}
    [ -f "$MODEL" ] || MODEL=$ROOT/tests/fixtures/random-tiny.bnm
    install -m 0644 "$MODEL" "$R/usr/local/share/basisnetd/models/test.bnm"
}

# Boots $R with systemd-nspawn in the background. Sets NP (nspawn's pid, for nspawn_cleanup)
# and LEADER (the container's PID 1, for `nsenter`).
nspawn_boot() {
    # `make asan` installs sanitizer builds: LeakSanitizer needs ptrace, which the syscall
    # filter forbids, and the service does not inherit the test's ASAN_OPTIONS.
    if grep -qs __asan_init "$R/usr/local/bin/basisnetd"; then
        for u in basisnetd.service basisnetd@.service; do
            mkdir -p "$R/etc/systemd/system/$u.d"
            printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' > "$R/etc/systemd/system/$u.d/asan.conf"
        done
    fi

    systemd-nspawn -D "$R" --boot --register=no --keep-unit --link-journal=no --console=passive -q \
        > "$W/console.log" 2>&1 &
    NP=$!
    LEADER= state= up=
    for _ in $(seq 100); do
        LEADER=$(pgrep -P "$NP" | head -1 || true)
        [ -n "$LEADER" ] && state=$(in_ct systemctl is-system-running 2>&1 || true)
        case $state in running|degraded) up=1; break ;; esac
        sleep 0.1
    done
    [ -n "$LEADER" ] || fail "container did not boot: $(tail -n 20 "$W/console.log")"
    [ -n "$up" ] || fail "container's systemd not up after 10 s (is-system-running: ${state:-no answer}): $(tail -n 20 "$W/console.log")"
    ok "container booted (systemd $state)"
}
