# Shared by the systemd-nspawn tests (sourced, not run). nspawn_prepare_root: an overlay of the host root in $W
# with the project installed into it as a package would do it. Needs ROOT, BUILD, W and a
# `fail` function; sets R (the container's root) and MODEL (the model the test installs as
# /usr/local/share/basisnetd/models/test.bnm: $BN_TEST_MODEL, else the shipped model, else
# the random-weight fixture).
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

# Boots $R with systemd-nspawn in the background. Sets NP (nspawn's pid, for the caller's
# cleanup) and LEADER (the container's PID 1, for `nsenter`); needs `in_ct`, `fail`, `ok`.
nspawn_boot() {
    # `make asan` installs sanitizer builds: LeakSanitizer needs ptrace, which the syscall
    # filter forbids, and the service does not inherit the test's ASAN_OPTIONS.
    if grep -q __asan_init "$R/usr/local/bin/basisnetd"; then
        for u in basisnetd.service basisnetd@.service; do
            mkdir -p "$R/etc/systemd/system/$u.d"
            printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n' > "$R/etc/systemd/system/$u.d/asan.conf"
        done
    fi

    systemd-nspawn -D "$R" --boot --register=no --keep-unit --link-journal=no --console=passive -q \
        > "$W/console.log" 2>&1 &
    NP=$!
    LEADER=
    for _ in $(seq 100); do
        LEADER=$(pgrep -P "$NP" | head -1 || true)
        [ -n "$LEADER" ] && in_ct systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
        sleep 0.1
    done
    [ -n "$LEADER" ] || fail "container did not boot"
    ok "container booted"
}
