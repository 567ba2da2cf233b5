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
. benches/lib/two_netns.sh
trap two_netns_cleanup EXIT
two_netns_setup

# 1. Bare veth.
veth=$(measure 10.98.0.2)

# 2. wireguard-go at both ends.
wggo_up
wggo=$(measure 10.9.0.2)
stop_all

# 3. Pisek at both ends: TUN with TSO/GRO offload (default), then without
#    (one packet per TUN read/write, all that tun-tap offers).
run_pisek() {
    wgpeer_up "$PEER" "$@"
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
