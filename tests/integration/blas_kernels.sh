#!/bin/bash
# OpenBLAS kernel choice (docs/engine.md, "Threads and OpenBLAS kernel selection"): when
# OpenBLAS falls back to its generic kernels on a CPU with AVX2 and FMA, `basisnet` and
# `basisnetd` set OPENBLAS_CORETYPE and re-execute themselves (same PID); a value the user
# set is kept. What OpenBLAS picks by itself is read independently, through ctypes.
source "$(dirname "$0")/daemon_common.bash"
unset OPENBLAS_CORETYPE
BN=$ROOT/$BUILD/basisnet
native=$("$PY" -c "
import ctypes, ctypes.util
l = ctypes.CDLL(ctypes.util.find_library('openblas') or 'libopenblas.so.0')
l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())") || fail "cannot ask libopenblas for its kernels"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
want=
case " Prescott Core2 Penryn Dunnington Nehalem Atom Sandybridge Unknown " in
    *" $native "*)
        if grep -qw avx2 <<<"$flags" && grep -qw fma <<<"$flags"; then
            if grep -qw avx512f <<<"$flags"; then want=SkylakeX; else want=Haswell; fi
        fi ;;
esac
echo "OpenBLAS picks '$native' by itself; expected after re-execution: '${want:-$native}'"

core() {   # core [ENV...]: the OpenBLAS kernels `basisnet bench` reports
    env "$@" "$BN" bench "$MODEL" --seconds 0.2 --json 2>"$T/bench.err" |
        "$PY" -c "import json, sys; print(json.load(sys.stdin)['blas_core'])"
}
got=$(core) || fail "basisnet bench: $(cat "$T/bench.err")"
[ "$got" = "${want:-$native}" ] || fail "basisnet runs '$got' kernels, expected '${want:-$native}'"
! grep -q "uses its generic" "$T/bench.err" || fail "warning after re-execution: $(cat "$T/bench.err")"
ok "basisnet runs '$got' kernels"

got=$(core OPENBLAS_CORETYPE=Prescott) || fail "basisnet bench: $(cat "$T/bench.err")"
[ "$got" = Prescott ] || fail "OPENBLAS_CORETYPE=Prescott gave '$got': the user's value was not kept"
! grep -q "uses its generic" "$T/bench.err" || fail "warning for a value the user chose: $(cat "$T/bench.err")"
ok "a value the user set is kept, without a warning"

# the daemon: the PID started is the one that answers, with the variable in its environment
write_config "$T/d.yaml"
start_daemon "$T/d.yaml"
"$CTL" stats >/dev/null || fail "stats"
[ "$(cat /proc/$DPID/comm)" = basisnetd ] || fail "process name is now $(cat /proc/$DPID/comm)"
env_core=$(tr '\0' '\n' < "/proc/$DPID/environ" | sed -n 's/^OPENBLAS_CORETYPE=//p')
if [ -n "$want" ]; then
    grep -q "re-executing with OPENBLAS_CORETYPE=$want" "$T/daemon.log" || fail "no re-execution logged"
    [ "$env_core" = "$want" ] || fail "daemon pid $DPID has OPENBLAS_CORETYPE='$env_core'"
    ok "basisnetd re-executed in place (pid $DPID, OPENBLAS_CORETYPE=$env_core) and serves"
else
    ! grep -q "re-executing" "$T/daemon.log" || fail "re-executed although '$native' is not generic"
    [ -z "$env_core" ] || fail "OPENBLAS_CORETYPE='$env_core' set for no reason"
    ok "basisnetd keeps OpenBLAS's own choice '$native'"
fi
! grep -q "uses its generic" "$T/daemon.log" || fail "daemon warns: $(grep "uses its generic" "$T/daemon.log")"
stop_daemon
ok "stopped in $STOP_MS ms"
