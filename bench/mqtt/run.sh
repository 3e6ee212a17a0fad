#!/bin/bash
# MQTT publisher benchmark: a mosquitto broker of its own on a free loopback port;
# (1) throughput of one client at QoS 0 and 1, (2) four instances at 30 fps each publishing
# every label (the heaviest setting), CPU per instance and broker CPU. Results are printed
# and written to $BUILD/bench/mqtt.txt. Measures daemon/mqtt.c (publish calls + its network
# thread), not JSON encoding, which the daemon does for its socket anyway.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SECONDS_RUN=${MQTT_BENCH_SECONDS:-20}
FPS=30
INSTANCES=4
out=$BUILD/bench/mqtt.txt
mkdir -p "$BUILD/bench"
bin=$BUILD/bench/bench_mqtt
cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I. -Iengine -Idaemon \
    $(pkg-config --cflags libmosquitto jansson) -o "$bin" bench/mqtt/bench_mqtt.c \
    daemon/mqtt.c daemon/protocol.c engine/bn_log.c engine/bn_error.c \
    $(pkg-config --libs libmosquitto jansson) -lm -pthread

dir=$(mktemp -d /tmp/bn-mqtt-bench.XXXXXX)
broker=
cleanup() { [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
user $(id -un)
CONF
/usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$dir/broker.log" 2>&1 &
broker=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

ticks() { awk '{print $14 + $15}' /proc/$broker/stat; }
hz=$(getconf CLK_TCK)
{
echo "mqtt bench $(date -u +%FT%TZ), $(nproc) cores, mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')"
for q in 0 1; do "$bin" throughput "$port" "$q" 50000; done
for q in 0 1; do
    total=$((INSTANCES * FPS * SECONDS_RUN))
    mosquitto_sub -h 127.0.0.1 -p "$port" -t 'bench/+/label' -q "$q" -C "$total" -W $((SECONDS_RUN + 15)) \
        >"$dir/sub.txt" 2>/dev/null &
    sub=$!
    sleep 0.3
    b0=$(ticks)
    pids=()
    for i in $(seq "$INSTANCES"); do
        "$bin" rate "$port" "$q" "$FPS" "$SECONDS_RUN" "cam$i" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    b1=$(ticks)
    wait "$sub" || true
    got=$(wc -l <"$dir/sub.txt")
    echo "rate qos=$q: $INSTANCES instances x $FPS fps x ${SECONDS_RUN} s: subscriber received $got of $total;" \
         "broker CPU $(awk -v t=$((b1 - b0)) -v hz="$hz" -v s="$SECONDS_RUN" 'BEGIN{printf "%.2f", 100*t/hz/s}')% of a core"
done
} 2>&1 | tee "$out"
