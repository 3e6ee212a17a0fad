#!/bin/bash
# basisnetd under a real systemd: `make install` into an overlay of the host root, boot it
# with systemd-nspawn, then: start (Type=notify waits for READY), STATUS=, subscribe,
# reload, SIGSTOP -> watchdog kill -> Restart=on-failure, an @instance with its own socket,
# clean stop, event snapshots written to the StateDirectory. Also `systemd-analyze verify` and
# the security exposure of the installed units.
# Needs root, systemd-nspawn and unshare; prints SKIP and passes otherwise.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
source "$(dirname "$0")/nspawn_common.bash"
nspawn_enter "$@"

nspawn_workdir bnd-nspawn
nspawn_prepare_root
# No camera in the container: the test source, STATUS every second, a short watchdog.
for name in basisnetd cam2; do
    cat > "$R/etc/basisnetd/$name.yaml" <<EOC
camera: $name
model: /usr/local/share/basisnetd/models/test.bnm
stats_interval_s: 1
source:
  kind: test
  width: 160
  height: 120
  fps: 30
publish:
  socket: /run/basisnetd/basisnetd.sock
  mode: 0660
  group: basisnetd
  control_group: adm
events:
  dir: /var/lib/basisnetd/$([ $name = basisnetd ] && echo events || echo $name-events)
EOC
done
mkdir -p "$R/etc/systemd/system/basisnetd.service.d"
printf '[Service]\nWatchdogSec=3\nRestartSec=1\n' > "$R/etc/systemd/system/basisnetd.service.d/test.conf"
nspawn_boot

in_ct getent passwd basisnetd >/dev/null || fail "sysusers did not create basisnetd"
in_ct id -nG basisnetd | grep -qw video || fail "basisnetd not in group video"
[ "$(in_ct stat -c '%U:%G %a' /run/basisnetd)" = "basisnetd:basisnetd 755" ] || fail "tmpfiles: /run/basisnetd is $(in_ct stat -c '%U:%G %a' /run/basisnetd 2>&1)"
in_ct systemd-analyze verify /usr/local/lib/systemd/system/basisnetd.service \
    /usr/local/lib/systemd/system/basisnetd@.service || fail "systemd-analyze verify"
for u in basisnetd basisnetd@cam2; do
    e=$(in_ct systemd-analyze security --no-pager "$u.service" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    [ -n "$e" ] && awk "BEGIN{exit !($e <= 2.0)}" || fail "$u exposure '$e'"
    echo "exposure $u: $e"
done
ok "verify clean, exposure <= 2.0"

t0=$(date +%s%N)
in_ct systemctl start basisnetd || fail "start"
echo "start (until READY=1): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$(in_ct systemctl is-active basisnetd)" = active ] || fail "not active"
in_ct journalctl -u basisnetd --no-pager | grep -q "ready (first frame classified)" || fail "READY before the first frame?"
[ "$(in_ct stat -c '%U:%G %a' /run/basisnetd/basisnetd.sock)" = "basisnetd:basisnetd 660" ] || fail "socket owner/mode: $(in_ct stat -c '%U:%G %a' /run/basisnetd/basisnetd.sock)"
sleep 1.5
status=$(in_ct systemctl show -p StatusText --value basisnetd)
echo "STATUS: $status"
echo "$status" | grep -q "fps, latency mean .* exit share" || fail "STATUS text"
n=$(in_ct /usr/local/bin/basisnetctl subscribe --count 5 | grep -c '"type":"label"')
[ "$n" -eq 5 ] || fail "subscribe got $n labels"
ok "started, READY, STATUS, 5 labels subscribed"

# The hardened unit may write its event snapshots: StateDirectory=, under ProtectSystem=strict;
# the directory the daemon makes is 0750 less UMask=0077.
for _ in $(seq 50); do in_ct sh -c 'ls /var/lib/basisnetd/events/*.json' >/dev/null 2>&1 && break; sleep 0.1; done
in_ct sh -c 'ls /var/lib/basisnetd/events/*.jpg /var/lib/basisnetd/events/*.json' >/dev/null 2>&1 \
    || fail "no event snapshot in /var/lib/basisnetd/events: $(in_ct journalctl -u basisnetd --no-pager | tail -5)"
[ "$(in_ct stat -c '%U:%G %a' /var/lib/basisnetd)" = "basisnetd:basisnetd 750" ] || fail "StateDirectory: $(in_ct stat -c '%U:%G %a' /var/lib/basisnetd)"
[ "$(in_ct stat -c '%U %a' /var/lib/basisnetd/events)" = "basisnetd 700" ] || fail "events dir: $(in_ct stat -c '%U %a' /var/lib/basisnetd/events)"
ok "event snapshots written to the StateDirectory (/var/lib/basisnetd/events)"

# who may do what: group basisnetd reads (socket 0660), only root changes state
in_ct useradd -M -G basisnetd viewer && in_ct useradd -M stranger && in_ct useradd -M -G basisnetd,adm admin || fail "useradd"
as() { local u=$1; shift; in_ct setpriv --reuid="$u" --regid="$u" --init-groups "$@"; }
as viewer /usr/local/bin/basisnetctl subscribe --count 1 >/dev/null || fail "group member cannot subscribe"
rc=0; as viewer /usr/local/bin/basisnetctl set budget-ms 5 2>/dev/null || rc=$?
[ $rc -eq 4 ] || fail "viewer set: exit $rc, want 4 (permission denied)"
as admin /usr/local/bin/basisnetctl set budget-ms 5 >/dev/null || fail "control_group member (adm) may not set"
rc=0; as stranger /usr/local/bin/basisnetctl ping 2>/dev/null || rc=$?
[ $rc -eq 4 ] || fail "stranger ping: exit $rc, want 4 (socket permission)"
ok "group basisnetd subscribes; set needs control_group (adm); others cannot connect"

pid0=$(in_ct systemctl show -p MainPID --value basisnetd)
in_ct systemctl reload basisnetd || fail "reload"
[ "$(in_ct /usr/local/bin/basisnetctl stats | grep -c '"ok": 1')" -ge 1 ] || fail "reload not counted"
[ "$(in_ct systemctl show -p MainPID --value basisnetd)" = "$pid0" ] || fail "reload restarted the process"
ok "systemctl reload (same pid $pid0)"

# Freeze the whole process: no WATCHDOG=1 -> systemd kills it and restarts it.
in_ct kill -STOP "$pid0"
t0=$(date +%s)
pid1=$pid0
for _ in $(seq 150); do
    pid1=$(in_ct systemctl show -p MainPID --value basisnetd)
    [ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] && [ "$(in_ct systemctl is-active basisnetd)" = active ] && break
    sleep 0.1
done
[ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] || fail "no watchdog restart"
in_ct journalctl -u basisnetd --no-pager | grep -qi "watchdog timeout" || fail "restart was not the watchdog"
[ "$(in_ct systemctl show -p NRestarts --value basisnetd)" -ge 1 ] || fail "NRestarts"
echo "watchdog restart after $(( $(date +%s) - t0 )) s: pid $pid0 -> $pid1"
in_ct /usr/local/bin/basisnetctl ping >/dev/null || fail "restarted daemon does not answer"
ok "SIGSTOP -> watchdog -> restarted"

in_ct systemctl start basisnetd@cam2 || fail "start basisnetd@cam2"
in_ct /usr/local/bin/basisnetctl --socket /run/basisnetd/cam2.sock stats | grep -q '"camera": "cam2"' || fail "instance socket"
for _ in $(seq 50); do in_ct sh -c 'ls /var/lib/basisnetd/cam2-events/*.json' >/dev/null 2>&1 && break; sleep 0.1; done
in_ct sh -c 'ls /var/lib/basisnetd/cam2-events/*.json' >/dev/null 2>&1 || fail "basisnetd@cam2 wrote no event snapshot"
in_ct systemctl stop basisnetd@cam2
in_ct test -S /run/basisnetd/basisnetd.sock || fail "stopping an instance removed the main socket"
ok "basisnetd@cam2 on /run/basisnetd/cam2.sock"

t0=$(date +%s%N)
in_ct systemctl stop basisnetd
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(in_ct systemctl show -p Result --value basisnetd)" = success ] || fail "stop result $(in_ct systemctl show -p Result --value basisnetd)"
[ "$(in_ct systemctl show -p ExecMainStatus --value basisnetd)" = 0 ] || fail "exit status"
in_ct test ! -e /run/basisnetd/basisnetd.sock || fail "socket left after stop"
[ "$ms" -lt 2000 ] || fail "stop took $ms ms"
ok "clean stop in $ms ms (Result=success, status 0, socket removed)"
