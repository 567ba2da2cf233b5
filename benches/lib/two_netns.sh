# Two network namespaces joined by a veth, and the paths measured between
# them: the bare veth and wireguard-go at both ends. Sourced by
# benches/wg_throughput.sh and benches/overlay_baseline.sh (which
# examples/overlay_bench runs), so every bench measures its anchors the same way.
#
# The sourcing script sets TAG (a few characters unique to the run) and SECS
# (iperf3 seconds), calls two_netns_setup, and must `trap two_netns_cleanup EXIT`.
# Afterwards A and B name the namespaces (10.98.0.1 and 10.98.0.2 on veth0)
# and WORK a private temporary directory.

two_netns_setup() {
    A="pk-${TAG}a"; B="pk-${TAG}b"
    WORK=$(mktemp -d)
    ip netns add "$A"; ip netns add "$B"
    ip -n "$A" link set lo up; ip -n "$B" link set lo up
    ip -n "$A" link add veth0 type veth peer name veth0 netns "$B"
    ip -n "$A" addr add 10.98.0.1/24 dev veth0; ip -n "$B" addr add 10.98.0.2/24 dev veth0
    ip -n "$A" link set veth0 up; ip -n "$B" link set veth0 up
    umask 077
    for side in a b; do wg genkey > "$WORK/$side.key"; wg pubkey < "$WORK/$side.key" > "$WORK/$side.pub"; done
}

# Kills whatever runs in the namespaces, deletes them and the work directory.
two_netns_cleanup() {
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    sleep 0.3
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -f /var/run/wireguard/${TAG}*.sock
    rm -rf "$WORK"
}

# Stops every process in both namespaces and waits until they are gone
# (and with them their UDP ports and interfaces).
stop_all() {
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; done
    done
    for _ in $(seq 100); do
        [ -z "$(ip netns pids "$A")$(ip netns pids "$B")" ] && return
        sleep 0.05
    done
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
    done
}

# iperf3 client in A to a server at $1 in B; prints Gbit/s (receiver side).
# One server serves a short warm-up (which also waits for the path, e.g. a
# handshake) and then the measurement.
measure() {
    ip netns exec "$B" iperf3 -s -B "$1" >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 50); do
        ip netns exec "$A" iperf3 -c "$1" -t 1 >/dev/null 2>&1 && break || sleep 0.2
    done
    if ! ip netns exec "$A" iperf3 -c "$1" -t "$SECS" -J > "$WORK/iperf.json"; then
        kill "$server" 2>/dev/null || true
        echo "0"
        return
    fi
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    python3 -c "import json,sys; d=json.load(open('$WORK/iperf.json')); print('%.3f' % (d['end']['sum_received']['bits_per_second']/1e9))"
}

# ping -c 50 -i 0.01 from A to $1; prints "avg_ms p50_ms" of the replies.
rtt() {
    ip netns exec "$A" ping -c 50 -i 0.01 -W 1 "$1" | python3 -c '
import re, statistics, sys
t = [float(m.group(1)) for m in re.finditer(r"time=([0-9.]+) ms", sys.stdin.read())]
print("%.3f %.3f" % (statistics.mean(t), statistics.median(t)) if t else "nan nan")'
}

# wireguard-go at both ends (interfaces ${TAG}a/${TAG}b, 10.9.0.1 and
# 10.9.0.2, MTU 1420); returns once both interfaces are configured and up.
wggo_up() {
    for side in a b; do
        local ns=$A; [ $side = b ] && ns=$B
        ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go "${TAG}$side" >/dev/null 2>&1 &
    done
    for _ in $(seq 100); do
        ip -n "$A" link show "${TAG}a" >/dev/null 2>&1 && ip -n "$B" link show "${TAG}b" >/dev/null 2>&1 && break
        sleep 0.05
    done
    ip netns exec "$A" wg set "${TAG}a" private-key "$WORK/a.key" listen-port 51820 \
        peer "$(cat "$WORK/b.pub")" allowed-ips 10.9.0.2/32 endpoint 10.98.0.2:51820
    ip netns exec "$B" wg set "${TAG}b" private-key "$WORK/b.key" listen-port 51820 \
        peer "$(cat "$WORK/a.pub")" allowed-ips 10.9.0.1/32 endpoint 10.98.0.1:51820
    ip -n "$A" addr add 10.9.0.1/24 dev "${TAG}a"; ip -n "$A" link set "${TAG}a" mtu 1420 up
    ip -n "$B" addr add 10.9.0.2/24 dev "${TAG}b"; ip -n "$B" link set "${TAG}b" mtu 1420 up
}

# Total VmRSS (KiB) of the processes in namespace $1 whose name is $2.
rss_kib() {
    local total=0 pid
    for pid in $(ip netns pids "$1"); do
        if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]; then
            total=$((total + $(awk '/^VmRSS/ {print $2}' /proc/"$pid"/status)))
        fi
    done
    echo "$total"
}

# examples/wg_peer (binary $1) at both ends (TUN pwg0, 10.9.0.1 and
# 10.9.0.2, offload on unless more arguments say otherwise); returns once
# both print "ready".
wgpeer_up() {
    local peer=$1; shift
    ip netns exec "$A" "$peer" --key-file "$WORK/a.key" --listen 0.0.0.0:51820 --tun pwg0 \
        --address 10.9.0.1/24 --peer "$(cat "$WORK/b.pub")" --peer-endpoint 10.98.0.2:51820 \
        --allowed-ips 10.9.0.2/32 "$@" < /dev/null > "$WORK/a.log" 2>&1 &
    ip netns exec "$B" "$peer" --key-file "$WORK/b.key" --listen 0.0.0.0:51820 --tun pwg0 \
        --address 10.9.0.2/24 --peer "$(cat "$WORK/a.pub")" --peer-endpoint 10.98.0.1:51820 \
        --allowed-ips 10.9.0.1/32 "$@" < /dev/null > "$WORK/b.log" 2>&1 &
    for _ in $(seq 100); do
        grep -qs ready "$WORK/a.log" && grep -qs ready "$WORK/b.log" && break
        sleep 0.05
    done
}
