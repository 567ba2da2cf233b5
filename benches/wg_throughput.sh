#!/usr/bin/env bash
# TCP throughput through Pisek's WireGuard (boringtun + TUN + batched UDP,
# examples/wg_peer) between two network namespaces, next to wireguard-go
# between the same namespaces and a bare veth (the ceiling), in one run.
#
#   benches/wg_throughput.sh [seconds]      (root; iperf3, wireguard-go, wg)
#
# Prints a table; each row is iperf3 -t SECONDS, one stream, receiver side.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/sbin:$PATH"
SECS=${1:-10}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --example wg_peer -q
PEER="$TARGET/release/examples/wg_peer"

TAG="wgb$$"
A="pk-${TAG}a"; B="pk-${TAG}b"
WORK=$(mktemp -d)
cleanup() {
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
trap cleanup EXIT

ip netns add "$A"; ip netns add "$B"
ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip -n "$A" link add veth0 type veth peer name veth0 netns "$B"
ip -n "$A" addr add 10.98.0.1/24 dev veth0; ip -n "$B" addr add 10.98.0.2/24 dev veth0
ip -n "$A" link set veth0 up; ip -n "$B" link set veth0 up

umask 077
for side in a b; do wg genkey > "$WORK/$side.key"; wg pubkey < "$WORK/$side.key" > "$WORK/$side.pub"; done

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

# 1. Bare veth.
veth=$(measure 10.98.0.2)

# 2. wireguard-go at both ends.
for side in a b; do
    ns=$A; [ $side = b ] && ns=$B
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
wggo=$(measure 10.9.0.2)
stop_all

# 3. Pisek at both ends: TUN with TSO/GRO offload (default), then without
#    (one packet per TUN read/write, all that tun-tap offers).
run_pisek() {
    ip netns exec "$A" "$PEER" --key-file "$WORK/a.key" --listen 0.0.0.0:51820 --tun pwg0 \
        --address 10.9.0.1/24 --peer "$(cat "$WORK/b.pub")" --peer-endpoint 10.98.0.2:51820 \
        --allowed-ips 10.9.0.2/32 "$@" < /dev/null > "$WORK/a.log" 2>&1 &
    ip netns exec "$B" "$PEER" --key-file "$WORK/b.key" --listen 0.0.0.0:51820 --tun pwg0 \
        --address 10.9.0.2/24 --peer "$(cat "$WORK/a.pub")" --peer-endpoint 10.98.0.1:51820 \
        --allowed-ips 10.9.0.1/32 "$@" < /dev/null > "$WORK/b.log" 2>&1 &
    for _ in $(seq 100); do grep -qs ready "$WORK/a.log" && grep -qs ready "$WORK/b.log" && break; sleep 0.05; done
    measure 10.9.0.2
    stop_all
    rm -f "$WORK/a.log" "$WORK/b.log"
}
pisek=$(run_pisek)
pisek_plain=$(run_pisek --no-offload)

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
echo
echo "TCP throughput, iperf3 -t $SECS, one stream, between two network namespaces"
printf '%-40s %10s %16s\n' "path" "Gbit/s" "vs wireguard-go"
printf '%-40s %10s %16s\n' "bare veth (ceiling)" "$veth" "$(ratio "$veth" "$wggo")"
printf '%-40s %10s %16s\n' "wireguard-go <-> wireguard-go" "$wggo" "1.00"
printf '%-40s %10s %16s\n' "Pisek (boringtun) <-> Pisek" "$pisek" "$(ratio "$pisek" "$wggo")"
printf '%-40s %10s %16s\n' "Pisek, TUN without offload" "$pisek_plain" "$(ratio "$pisek_plain" "$wggo")"
