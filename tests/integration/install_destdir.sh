#!/bin/bash
# `make install DESTDIR=$tmp PREFIX=/usr` and `make uninstall` with the same arguments, as a
# package build would run them (no root, the real /usr is never touched):
#  - the programs, models, sample clip, example configs, /etc config, units, sysusers/tmpfiles
#    snippets, docs and man pages are installed; the units' @BINDIR@/@DATADIR@/@DOCDIR@ are
#    substituted, they name man:basisnetd(8), and every file:// Documentation= target is
#    installed;
#  - every installed config names no relative path and passes the installed basisnetd
#    --check-config (DESTDIR mapped);
#  - each installed man page renders without warnings (man --warnings, groff -ww) and is
#    found by name under the installed man tree; the installed basisnet --help runs;
#  - uninstall leaves no file behind (only empty directories), and keeps an /etc config the
#    admin has changed;
#  - docs cannot drift: every option and command that basisnetd --help, basisnetctl --help,
#    basisnet --help and basisnet COMMAND --help print appears in that program's man page.
# Needs man and groff (exit 77, which fails `make check`, without them).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
ok() { echo "ok:   $*"; }

for tool in man groff; do
    command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (apt-get install man-db groff-base)"; exit 77; }
done
for p in basisnetd basisnetctl basisnet; do
    [ -x "$BUILD/$p" ] || { echo "FAIL: $BUILD/$p is not built (run: make)"; exit 1; }
done

tmp=$(mktemp -d /tmp/bn-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/root
# The same build flags the programs were built with, so install's `all` does not relink them.
sanflags=()
grep -q __asan_init "$BUILD/basisnetd" 2>/dev/null && sanflags=(SAN=1 OPT=-O1)
mk() {   # target [DESTDIR]: make TARGET into DESTDIR (default $D) with PREFIX=/usr
    make -C "$ROOT" --no-print-directory -s "$1" DESTDIR="${2:-$D}" PREFIX=/usr BUILD="$BUILD" \
        "${sanflags[@]}" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; return 1; }
}

# render PAGE: no output on stderr from man --warnings and groff -ww (warnings are errors).
render() {
    local f=$1 err
    err=$( { man --warnings -l "$f" >/dev/null; } 2>&1; groff -man -ww -z "$f" 2>&1 )
    if [ -n "$err" ]; then fail "$f renders with warnings:"; echo "$err" | sed 's/^/    /'; return 1; fi
    MANWIDTH=80 man -l "$f" 2>/dev/null | grep -q . || { fail "$f renders empty"; return 1; }
}

# ---- install -----------------------------------------------------------------------------
if ! mk install; then
    echo "FAIL: make install DESTDIR=$D PREFIX=/usr"; exit 1
fi
ok "make install DESTDIR=... PREFIX=/usr"

expect=(usr/bin/basisnetd usr/bin/basisnetctl usr/bin/basisnet
        etc/basisnetd/basisnetd.yaml
        usr/lib/systemd/system/basisnetd.service usr/lib/systemd/system/basisnetd@.service
        usr/lib/sysusers.d/basisnetd.conf usr/lib/tmpfiles.d/basisnetd.conf
        usr/share/man/man8/basisnetd.8 usr/share/man/man1/basisnetctl.1
        usr/share/man/man1/basisnet.1 usr/share/man/man5/basisnetd.yaml.5)
for f in docs/daemon.md docs/config.md docs/protocol.md docs/deploy.md docs/http.md docs/gate.md \
         docs/troubleshooting.md; do
    expect+=("usr/share/doc/basisnetd/$(basename "$f")")
done
for f in configs/*.yaml; do expect+=("usr/share/basisnetd/$(basename "$f")"); done
expect+=(usr/share/basisnetd/samples/fmnist-sample.mkv)
for f in models/*.bnm models/*.labels; do
    [ -e "$f" ] && expect+=("usr/share/basisnetd/models/$(basename "$f")")
done
missing=0
for f in "${expect[@]}"; do
    [ -f "$D/$f" ] || { fail "not installed: /$f"; missing=1; }
done
[ $missing -eq 0 ] && ok "installed: ${#expect[@]} files (programs, models, configs, units, snippets, docs, man pages)"
# every picture an installed doc shows is installed beside it
for img in $(grep -ho '](img/[^)]*)' "$D"/usr/share/doc/basisnetd/*.md | sed 's/^](//; s/)$//' | sort -u); do
    [ -f "$D/usr/share/doc/basisnetd/$img" ] || fail "an installed doc links $img, which is not installed"
done
ok "the pictures the installed docs link are installed"
ls "$D"/usr/share/basisnetd/models/*.bnm >/dev/null 2>&1 || fail "no model installed"
for p in basisnetd basisnetctl basisnet; do
    [ -x "$D/usr/bin/$p" ] || fail "/usr/bin/$p is not executable"
done

# Units: paths substituted, man page named, file:// documentation installed.
for u in "$D"/usr/lib/systemd/system/*.service; do
    n=$(basename "$u")
    grep -q '@[A-Z]*@' "$u" && fail "$n: unsubstituted $(grep -o '@[A-Z]*@' "$u" | sort -u | tr '\n' ' ')"
    grep -q '^ExecStart=/usr/bin/basisnetd ' "$u" || fail "$n: ExecStart is not /usr/bin/basisnetd"
    grep -q '^Documentation=.*man:basisnetd(8)' "$u" || fail "$n: no Documentation=man:basisnetd(8)"
    for page in $(sed -n 's/^Documentation=//p' "$u"); do
        case $page in
        man:*) p=${page#man:}; sec=${p##*(}; sec=${sec%)}; p=${p%(*}
               [ -f "$D/usr/share/man/man$sec/$p.$sec" ] || fail "$n: $page is not installed";;
        file://*) [ -f "$D${page#file://}" ] || fail "$n: $page is not installed";;
        esac
    done
done
ok "units: @BINDIR@/@DATADIR@/@DOCDIR@ substituted, Documentation= targets installed"

# The /etc config points at the installed model.
model=$(sed -n 's/^model: *//p' "$D/etc/basisnetd/basisnetd.yaml")
case $model in
/usr/share/basisnetd/models/*) [ -f "$D$model" ] && ok "/etc config's model $model is installed" \
                                                 || fail "/etc config's model $model is not installed";;
*) fail "/etc config's model is not under /usr/share/basisnetd/models: '$model'";;
esac

# Every installed config passes the installed basisnetd's --check-config, with the DESTDIR
# prefix mapped: a copy of each has /usr/ as $D/usr/ and the socket's /run/basisnetd/ in the
# scratch tree (and, on a machine without the basisnetd group systemd-sysusers creates at
# install, no publish.group). The configs name no relative path: one copied elsewhere keeps
# working.
mkdir -p "$tmp/run" "$tmp/mapped"
have_group=1; getent group basisnetd >/dev/null || have_group=0
n=0
for f in "$D"/usr/share/basisnetd/*.yaml "$D"/etc/basisnetd/*.yaml; do
    rel=${f#$D}
    grep -nE '^[^#]*(model|path|file|socket): *\.\.?/' "$f" && fail "$rel keeps a relative path"
    m=$tmp/mapped/$(echo "${rel#/}" | tr / _)
    sed -e "s|/usr/|$D/usr/|g; s|/run/basisnetd/|$tmp/run/|" "$f" >"$m"
    [ $have_group -eq 1 ] || sed -i 's/^  group: basisnetd *\(#.*\)\?$/  group: ""/' "$m"
    out=$("$D/usr/bin/basisnetd" --check-config "$m" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -qxF "$m: OK" <<<"$out" && ! grep -q warning <<<"$out"; then
        n=$((n + 1))
    else
        fail "installed $rel fails --check-config (exit $rc):"; echo "$out" | sed 's/^/    /'
    fi
done
[ $n -ge 4 ] && ok "every installed config ($n) passes --check-config with DESTDIR mapped" \
    || fail "only $n installed configs checked (want the three examples and /etc/basisnetd/basisnetd.yaml)"
# The sample config plays the installed clip.
grep -q "^  path: /usr/share/basisnetd/samples/fmnist-sample.mkv" "$D/usr/share/basisnetd/sample.yaml" \
    && [ -f "$D/usr/share/basisnetd/samples/fmnist-sample.mkv" ] \
    && ok "sample.yaml plays the installed clip" || fail "sample.yaml does not name the installed clip"

# Man pages: render cleanly, found by name in the installed tree.
for f in "$D"/usr/share/man/man*/*; do
    render "$f" && ok "renders without warnings: ${f#$D}"
done
for page in basisnetd.8 basisnetctl.1 basisnet.1 basisnetd.yaml.5; do
    got=$(man -M "$D/usr/share/man" -w "${page##*.}" "${page%.*}" 2>/dev/null)
    [ "$got" = "$D/usr/share/man/man${page##*.}/$page" ] \
        || fail "man -M ... ${page##*.} ${page%.*} finds '$got'"
done
ok "man -M DESTDIR/usr/share/man finds each page by name and section"

# The installed programs run.
out=$("$D/usr/bin/basisnet" --help 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '^Usage: basisnet ' <<<"$out" && ok "installed basisnet --help runs" \
    || fail "installed basisnet --help: exit $rc: $out"
for p in basisnetd basisnetctl; do
    "$D/usr/bin/$p" --version >/dev/null 2>&1 || fail "installed $p --version fails"
done

# ---- docs cannot drift: every option/command of --help is in the man page -------------------
# Man source normalized to plain text: font escapes dropped, \- as -, \& dropped.
plain() { sed -e 's/\\f[BIRP]//g; s/\\f(..//g; s/\\-/-/g; s/\\&//g; s/\\(en/-/g' "$1"; }
opts() { grep -oE -- '(^|[^a-zA-Z0-9_-])--?[a-zA-Z][a-zA-Z0-9-]*' | sed -E 's/^[^-]*//' | sort -u; }
commands() { awk '/^Commands:/ {c = 1; next} c && /^$/ {c = 0} c && /^  [a-z]/ {print $1}'; }
check_page() {   # page, what, words...
    local page=$1 what=$2 w text miss=()
    shift 2
    text=$(plain "$page")
    for w in "$@"; do
        grep -qE -- "(^|[^a-zA-Z0-9_-])$w([^a-zA-Z0-9_-]|\$)" <<<"$text" || miss+=("$w")
    done
    if [ ${#miss[@]} -gt 0 ]; then fail "$page lacks what $what prints: ${miss[*]}"
    else ok "$page has all ${#@} options/commands of $what"; fi
}
check_page man/basisnetd.8 "basisnetd --help" $("$BUILD/basisnetd" --help | opts)
ctl_help=$("$BUILD/basisnetctl" --help)
check_page man/basisnetctl.1 "basisnetctl --help" $(opts <<<"$ctl_help") $(commands <<<"$ctl_help") \
    $(grep -oE '^  set .*' <<<"$ctl_help" | grep -oE '[a-z]+(-[a-z]+)+|threshold' | sort -u) \
    json text tsv
bn_help=$("$BUILD/basisnet" --help)
bn_cmds=$(commands <<<"$bn_help")
[ -n "$bn_cmds" ] || fail "no commands found in basisnet --help"
check_page man/basisnet.1 "basisnet --help" $(opts <<<"$bn_help") $bn_cmds
for c in $bn_cmds; do
    check_page man/basisnet.1 "basisnet $c --help" $("$BUILD/basisnet" "$c" --help | opts)
done
# A drifted page must be caught: the check on a page without one option fails.
sed 's/\\-\\-reconnect/--gone/g' man/basisnetctl.1 >"$tmp/drift.1"
before=$failed
check_page "$tmp/drift.1" "basisnetctl --help" $(opts <<<"$ctl_help") >/dev/null
if [ $failed -eq $((before + 1)) ]; then failed=$before; ok "drift check catches a missing option"
else failed=$before; fail "drift check does not catch a page without --reconnect"; fi

# ---- uninstall ---------------------------------------------------------------------------
if mk uninstall; then
    left=$(cd "$D" && find . ! -type d | sort)
    if [ -n "$left" ]; then fail "make uninstall left files:"; echo "$left" | sed 's/^/    /'
    else ok "make uninstall: no file left ($(find "$D" -type d | wc -l) empty directories)"; fi
else
    fail "make uninstall DESTDIR=$D PREFIX=/usr"
fi

# An /etc config the admin changed is kept; everything else still goes.
D2=$tmp/root2
if mk install "$D2"; then
    echo "# local change" >>"$D2/etc/basisnetd/basisnetd.yaml"
    if mk uninstall "$D2"; then
        left=$(cd "$D2" && find . ! -type d | sort)
        [ "$left" = "./etc/basisnetd/basisnetd.yaml" ] \
            && ok "make uninstall keeps a changed /etc/basisnetd/basisnetd.yaml and nothing else" \
            || { fail "after uninstall with a changed /etc config:"; echo "${left:-(nothing)}" | sed 's/^/    /'; }
    else
        fail "make uninstall (changed /etc config)"
    fi
else
    fail "second make install"
fi

[ $failed -eq 0 ] || { echo "install_destdir: $failed failed"; exit 1; }
echo "install_destdir: all passed"
