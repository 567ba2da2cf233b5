#!/usr/bin/env bash
# Macro benchmark of pisek-collector against its anchors, all in one run, in
# a network namespace of its own (run as root):
#
#   1. carbon alone: N Graphite lines sent straight into carbon-cache's line
#      receiver (the ceiling for anything that feeds carbon);
#   2. baseline: mosquitto_sub (persistent session, QoS 1) piped through awk
#      into carbon, the simplest bridge one could write;
#   3. pisek-collector end to end: mosquitto -> collector (decode, durable
#      queue with fsync before ack) -> carbon, pinned to one core; peak RSS;
#   4. the collector alone (benches/collector.rs): input + queue + writer into
#      a plain TCP sink, no broker, one core.
#
# Carbon runs alone on CARBON_CORE in all three measurements, so its anchor
# holds for each; the sender, the broker and the bridge share CORE.
# For 2 and 3 the broker is filled while the subscriber is offline, then the
# subscriber is started and timed until carbon has read every reading (the
# subscriber sent all and carbon's socket has no unread byte left; with small
# N the socket buffers alone would hide carbon's speed).
#
#   benches/collector.sh            # N=200000
#   N=50000 benches/collector.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/sbin:$PATH"
N=${N:-200000}
TOPICS=100
CORE=${CORE:-1}          # the broker and the bridge under test (collector or baseline)
CARBON_CORE=${CARBON_CORE:-0}  # carbon alone on the other core, in every measurement
TARGET=${CARGO_TARGET_DIR:-target}
PY=/usr/bin/python3

cargo build --release -q -p pisek-collector --bin pisek-collector
cargo bench -q --bench collector --no-run 2>/dev/null
BENCH_BIN=$(ls -t "$TARGET"/release/deps/collector-* | grep -v '\.d$' | head -1)
COLLECTOR="$TARGET/release/pisek-collector"

NS=pk-cbench-$$
TMP=$(mktemp -d /tmp/pisek-collector-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# (a function forks a subshell when put in the background: start daemons with
# `ip netns exec` itself, so that $! is the daemon.)
inns() { ip netns exec "$NS" "$@"; }
now_ns() { date +%s%N; }
wait_port() {
    for _ in $(seq 1 300); do
        inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "port $1 did not open" >&2; exit 1
}
# True when carbon has read everything sent to it: no connection to its line
# receiver has unread bytes (Recv-Q of carbon's end is 0).
carbon_drained() {
    inns ss -Htn '( sport = :2003 )' | awk '$2 != 0 {busy = 1} END {exit busy}'
}
wait_carbon_drained() {
    until carbon_drained; do sleep 0.005; done
}
metric() {
    inns bash -c "exec 3<>/dev/tcp/127.0.0.1/9108 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null \
        | awk -v m="pisek_collector_$1" '$1 == m {print $2}' || true  # not up yet
}

# --- peers -------------------------------------------------------------------
cat > "$TMP/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 0
log_dest none
CONF
ip netns exec "$NS" taskset -c "$CORE" mosquitto -c "$TMP/mosquitto.conf" & PIDS+=($!)
wait_port 1883

mkdir -p "$TMP/carbon"/{whisper,log,run}
cat > "$TMP/carbon/carbon.conf" <<CONF
[cache]
STORAGE_DIR = $TMP/carbon/
LOCAL_DATA_DIR = $TMP/carbon/whisper/
WHISPER_DIR = $TMP/carbon/whisper/
CONF_DIR = $TMP/carbon/
LOG_DIR = $TMP/carbon/log/
PID_DIR = $TMP/carbon/run/
ENABLE_TAGS = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = 2003
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = 2004
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 7002
CACHE_WRITE_STRATEGY = sorted
CONF
printf '[all]\npattern = .*\nretentions = 1s:1d\n' > "$TMP/carbon/storage-schemas.conf"
ip netns exec "$NS" taskset -c "$CARBON_CORE" carbon-cache --config="$TMP/carbon/carbon.conf" --nodaemon start >"$TMP/carbon.out" 2>&1 & PIDS+=($!)
wait_port 2003

# --- 1. carbon alone ---------------------------------------------------------
base=$(( $(date +%s) - 3600 ))
$PY - "$N" "$TOPICS" "$base" > "$TMP/lines" <<'PY'
import sys
n, topics, base = map(int, sys.argv[1:])
out = sys.stdout
for i in range(n):
    out.write(f"bench.carbon.s{i % topics}.value {i % 997}.5 {base + i // topics}\n")
PY
carbon_secs=$(inns taskset -c "$CORE" $PY - "$TMP/lines" <<'PY'
import socket, sys, time
data = open(sys.argv[1], "rb").read()
s = socket.create_connection(("127.0.0.1", 2003))
t = time.monotonic()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass  # carbon closes after it has read everything
print(time.monotonic() - t)
PY
)

# --- prefill helper: N plain-number messages over TOPICS topics, QoS 1 -------
prefill() { # $1 = topic prefix
    local per=$(( N / TOPICS ))
    for t in $(seq 0 $((TOPICS - 1))); do
        seq 1 "$per" | inns mosquitto_pub -h 127.0.0.1 -q 1 -t "$1/s$t" -l
    done
}

# --- 2. baseline: mosquitto_sub | awk | carbon --------------------------------
inns timeout 1 mosquitto_sub -h 127.0.0.1 -c -i bench-sub -q 1 -t 'base/#' >/dev/null 2>&1 || true
prefill base
t0=$(now_ns)
inns taskset -c "$CORE" bash -c "mosquitto_sub -h 127.0.0.1 -c -i bench-sub -q 1 -t 'base/#' -v -C $N \
    | awk '{gsub(\"/\", \".\", \$1); print \$1 \".value\", \$2, systime()}' > /dev/tcp/127.0.0.1/2003"
wait_carbon_drained
t1=$(now_ns)
base_secs=$(echo "($t1 - $t0) / 1000000000" | bc -l)

# --- 3. pisek-collector end to end -------------------------------------------
cat > "$TMP/collector.toml" <<CONF
[mqtt]
broker = "127.0.0.1:1883"
client_id = "bench-collector"
[queue]
dir = "$TMP/queue"
[graphite]
address = "127.0.0.1:2003"
[health]
listen = "127.0.0.1:9108"
[[route]]
filter = "coll/+"
decoder = "plain"
metric = "bench.collector.{topic.1}.value"
CONF
# First run creates the persistent session and its subscription.
ip netns exec "$NS" "$COLLECTOR" --config "$TMP/collector.toml" 2>"$TMP/collector-1.log" & cpid=$!
until [ "$(metric mqtt_subscribed)" = 1 ]; do sleep 0.05; done
kill "$cpid"; wait "$cpid" || true
prefill coll
t0=$(now_ns)
ip netns exec "$NS" taskset -c "$CORE" "$COLLECTOR" --config "$TMP/collector.toml" 2>"$TMP/collector-2.log" & cpid=$!; PIDS+=($cpid)
sent=0
until [ "${sent:-0}" -ge "$N" ]; do sleep 0.005; sent=$(metric readings_sent_total); done
wait_carbon_drained
t1=$(now_ns)
rss_kib=$(awk '/VmHWM/ {print $2}' /proc/$cpid/status)
exe=$(readlink /proc/$cpid/exe)
cp "$TMP"/collector-*.log /tmp/ 2>/dev/null || true
coll_secs=$(echo "($t1 - $t0) / 1000000000" | bc -l)
kill "$cpid"; wait "$cpid" 2>/dev/null || true

# --- 4. the collector alone into a TCP sink ----------------------------------
alone=$(COLLECTOR_BENCH_MESSAGES=$((N * 10)) taskset -c "$CORE" "$BENCH_BIN" --bench)

rate() { echo "$N / $1" | bc -l | xargs printf '%.0f'; }
carbon_rate=$(rate "$carbon_secs"); base_rate=$(rate "$base_secs"); coll_rate=$(rate "$coll_secs")
echo
echo "pisek-collector benchmark: N=$N readings over $TOPICS topics; carbon on core $CARBON_CORE, broker + bridge on core $CORE"
printf '%-50s %12s %10s\n' "path" "readings/s" "vs carbon"
printf '%-50s %12s %10s\n' "carbon alone (line receiver, one TCP stream)" "$carbon_rate" "1.00"
printf '%-50s %12s %10.2f\n' "mosquitto_sub | awk | carbon (baseline)" "$base_rate" "$(echo "$base_rate / $carbon_rate" | bc -l)"
printf '%-50s %12s %10.2f\n' "mosquitto -> pisek-collector -> carbon" "$coll_rate" "$(echo "$coll_rate / $carbon_rate" | bc -l)"
echo "pisek-collector peak RSS (VmHWM of $exe): $rss_kib KiB"
echo
echo "$alone"
