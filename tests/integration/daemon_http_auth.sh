#!/bin/bash
# HTTP basic authentication (http.auth_file, docs/http.md#security) with curl: no
# credentials, a wrong password and an unknown user are 401 with WWW-Authenticate, the right
# ones 200 on every endpoint, /healthz stays open; a plain-text or cut hash and a missing
# file are refused at --check-config, start-up and reload with the key's FILE:LINE:COL and the
# file's line; a world-readable file is a warning; a reload reads a changed file. ~5 s.
source "$(dirname "$0")/daemon_common.bash"
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed"; exit 77; }

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }

umask 077
printf '# users of the live page\nann:%s\n\nbob:%s\n' "$(openssl passwd -6 'correct horse')" \
    "$(openssl passwd -6 'battery staple')" >"$T/users"
write_config "$T/d.yaml" "http:
  listen: 127.0.0.1:$PORT
  auth_file: $T/users"

# ---- refused at load: plain text, a cut hash, a missing file --------------------------------
printf 'ann:%s\ncarol:hunter2\n' "$(openssl passwd -6 x)" >"$T/plain"
sed "s|auth_file: .*|auth_file: $T/plain|" "$T/d.yaml" >"$T/plain.yaml"
rc=0; "$BND" --check-config "$T/plain.yaml" >"$T/check.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-config exit $rc with a plain-text password"
want="$T/plain.yaml:18:3: key 'http.auth_file': $T/plain:2: user 'carol': the password is not a crypt(3) hash (a plain-text password?); make one with \`mkpasswd -m yescrypt\` (Debian's whois) or \`openssl passwd -6\` and write user:HASH"
grep -qxF "$want" "$T/check.out" || { cat "$T/check.out"; fail "--check-config message (want: $want)"; }
rc=0; "$BND" --config "$T/plain.yaml" >/dev/null 2>"$T/start.log" || rc=$?
[ $rc -ne 0 ] && grep -qF "$T/plain:2: user 'carol'" "$T/start.log" || fail "start-up with a plain-text password: exit $rc"
printf 'ann:%s\n' "$(openssl passwd -6 x | cut -c1-40)" >"$T/cut"
sed "s|auth_file: .*|auth_file: $T/cut|" "$T/d.yaml" >"$T/cut.yaml"
"$BND" --check-config "$T/cut.yaml" >"$T/check.out" 2>&1 || true
grep -qF "$T/cut:1: user 'ann': the password is not a whole crypt(3) hash" "$T/check.out" \
    || fail "a cut hash was accepted: $(cat "$T/check.out")"
printf 'ann:%s\n' "$(openssl passwd -1 x)" >"$T/md5"
sed "s|auth_file: .*|auth_file: $T/md5|" "$T/d.yaml" >"$T/md5.yaml"
"$BND" --check-config "$T/md5.yaml" >"$T/check.out" 2>&1 || true
grep -qF "$T/md5:1: user 'ann': the password uses a legacy crypt(3) method" "$T/check.out" \
    || fail "an MD5 hash was accepted: $(cat "$T/check.out")"
# settings whose check would stall the daemon (about a second at most is taken)
x86=$(printf 'x%.0s' $(seq 86)); x53=$(printf 'x%.0s' $(seq 53)); x43=$(printf 'x%.0s' $(seq 43))
for line in "dan:\$6\$rounds=2000000\$abcdefgh\$$x86|asks for more than 1000000 rounds" \
            "eve:\$2b\$15\$$x53|asks for a bcrypt cost over 13" \
            "fay:\$y\$jET\$abcdefgh\$$x43|asks for more yescrypt memory than 256 MB"; do
    printf '%s\n' "${line%%|*}" >"$T/costly"
    sed "s|auth_file: .*|auth_file: $T/costly|" "$T/d.yaml" >"$T/costly.yaml"
    rc=0; timeout 20 "$BND" --check-config "$T/costly.yaml" >"$T/check.out" 2>&1 || rc=$?
    [ $rc -eq 1 ] && grep -qF "$T/costly:1: user '${line%%:*}': the password ${line#*|}" "$T/check.out" \
        || fail "a costly hash (${line%%:*}): exit $rc, $(cat "$T/check.out")"
done
sed "s|auth_file: .*|auth_file: $T/none|" "$T/d.yaml" >"$T/none.yaml"
"$BND" --check-config "$T/none.yaml" >"$T/check.out" 2>&1 || true
grep -qF "$T/none.yaml:18:3: key 'http.auth_file': cannot read $T/none: No such file or directory" "$T/check.out" \
    || fail "a missing auth file: $(cat "$T/check.out")"
ok "plain-text, cut, MD5 and too costly hashes, a missing file: refused at --check-config and start-up with FILE:LINE:COL and the file's line"

chmod 0644 "$T/users"
"$BND" --check-config "$T/d.yaml" >"$T/check.out" 2>&1 || true
grep -qF "$T/d.yaml:18:3: key 'http.auth_file': warning: the password file '$T/users' is readable by every user (mode 0644)" "$T/check.out" \
    || fail "no warning for a world-readable password file: $(cat "$T/check.out")"
chmod 0600 "$T/users"
"$BND" --check-config "$T/d.yaml" >"$T/check.out" 2>&1 || fail "--check-config on the good file: $(cat "$T/check.out")"
grep -q warning "$T/check.out" && fail "a warning for a 0600 file: $(cat "$T/check.out")"
ok "a world-readable password file is a warning"

# ---- the endpoints ----------------------------------------------------------------------------
start_daemon "$T/d.yaml"
for p in / /metrics /api/state /snapshot.jpg /events/ /x; do
    [ "$(code "$URL$p")" = 401 ] || fail "$p without credentials: $(code "$URL$p")"
done
curl -s -D "$T/h" -o "$T/b" "$URL/metrics"
grep -qi '^www-authenticate: Basic realm="basisnetd"' "$T/h" || fail "401 without WWW-Authenticate: $(cat "$T/h")"
grep -q '"type":"error"' "$T/b" || fail "401 body is not the JSON error"
[ "$(code -u 'ann:wrong' "$URL/metrics")" = 401 ] || fail "a wrong password"
[ "$(code -u 'dave:correct horse' "$URL/metrics")" = 401 ] || fail "an unknown user"
[ "$(code -u 'bob:correct horse' "$URL/metrics")" = 401 ] || fail "another user's password"
[ "$(code -H 'Authorization: Basic !!!' "$URL/metrics")" = 401 ] || fail "a garbage header"
[ "$(code -H 'Authorization: Bearer abc' "$URL/metrics")" = 401 ] || fail "another scheme"
for _ in $(seq 50); do [ "$(code "$URL/healthz")" = 200 ] && break; sleep 0.1; done
[ "$(code "$URL/healthz")" = 200 ] || fail "/healthz is not open"
for p in / /metrics /api/state /snapshot.jpg; do
    [ "$(code -u 'ann:correct horse' "$URL$p")" = 200 ] || fail "$p with ann's password"
done
[ "$(code -u 'bob:battery staple' "$URL/metrics")" = 200 ] || fail "bob"
[ "$(code -u 'ann:correct horse' "$URL/metrics")" = 200 ] || fail "ann again (remembered)"
# the page read whole before grep looks at it: `curl | grep -q` fails under pipefail when grep
# exits before curl has written the rest (curl's exit 23)
metrics=$(curl -s -u 'ann:correct horse' "$URL/metrics")
grep -q '^basisnetd_http_auth_failures_total{camera="itest"} 1[0-9]$' <<<"$metrics" \
    || fail "auth failures not counted: $(grep auth_fail <<<"$metrics")"
ok "no credentials, a wrong password, an unknown user, garbage: 401 with WWW-Authenticate; the right ones 200; /healthz open"

# ---- reload reads the file again ------------------------------------------------------------------
printf 'ann:%s\n' "$(openssl passwd -6 'new one')" >"$T/users"
"$CTL" reload >/dev/null || fail "reload with a new password file"
[ "$(code -u 'ann:correct horse' "$URL/metrics")" = 401 ] || fail "the old password still works after a reload"
[ "$(code -u 'ann:new one' "$URL/metrics")" = 200 ] || fail "the new password after a reload"
printf 'ann:plain\n' >"$T/users"
rc=0; "$CTL" reload >"$T/reload.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -qF "$T/d.yaml:18:3: key 'http.auth_file': $T/users:1: user 'ann'" "$T/reload.out" \
    || fail "reload with a plain-text password: exit $rc, $(cat "$T/reload.out")"
[ "$(code -u 'ann:new one' "$URL/metrics")" = 200 ] || fail "a rejected reload changed the passwords"
ok "a reload reads the file again; a plain-text entry rejects it and the running passwords stay"
stop_daemon
