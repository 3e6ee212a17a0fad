# Shared by the systemd-nspawn tests (sourced, not run): an overlay of the host root in $W
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
