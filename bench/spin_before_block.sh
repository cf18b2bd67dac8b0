#!/usr/bin/env bash
# Spin-before-block (issue 25): W1 (the classifier, [1,3,100,200] FP32, one request at a time)
# served with --spin-before-block-us set to each value given, in alternating rounds, each its
# own server on the example repository's classifier; bench/load_driver drives c=1. Reports
# each value's median p50, p99 and req/s, and the server's CPU time per request (user +
# system from /proc over the measured window, warm-up included), which is what the spinning
# costs.
#
#   bench/spin_before_block.sh REPOSITORY ROUNDS US...
#   bench/spin_before_block.sh /tmp/example 3 0 200 1000
#
# $SECONDS_PER_POINT (default 6) is each window. Reports in $OUT (default
# /tmp/spin-before-block). Every server started is stopped by PID.
set -euo pipefail
# shellcheck source=bench/await_server.sh
source "$(dirname "$0")/await_server.sh"
repository=$(realpath "$1")
rounds=$2
shift 2
out=${OUT:-/tmp/spin-before-block}
window=${SECONDS_PER_POINT:-6}
root=$(realpath "$(dirname "$0")/..")
mkdir -p "$out"

server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT

# user + system clock ticks of process $1
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
  for spin in "$@"; do
    log=$out/spin$spin-$round.server.log
    "$root/build/server/torchbricks-server" --model-repository "$repository" \
      --grpc-address 127.0.0.1 --grpc-port 0 --metrics-port 0 --self-configuration-seconds 0 \
      --spin-before-block-us "$spin" > "$out/spin$spin-$round.server.out" 2> "$log" &
    server_pid=$!
    port=$(await_server "$out/spin$spin-$round.server.out" "$log" "$server_pid")
    before=$(cpu_ticks "$server_pid")
    "$root/build/bench/load_driver" --repository "$repository" --address "127.0.0.1:$port" \
      --workloads W1 --concurrency 1 --seconds "$window" --warmup-seconds 1 \
      --inprocess-batches 1 --inprocess-threads 1 > "$out/spin$spin-$round.md" 2>&1 \
      || { tail -20 "$out/spin$spin-$round.md"; exit 1; }
    echo "$(( $(cpu_ticks "$server_pid") - before ))" > "$out/spin$spin-$round.ticks"
    echo "== round $round: spin $spin us (port $port)"
    kill "$server_pid" && wait "$server_pid" 2> /dev/null || true
    server_pid=""
  done
done

python3 - "$out" "$rounds" "$(getconf CLK_TCK)" "$window" "$@" << 'PY'
import re
import statistics
import sys
from pathlib import Path

out, rounds, hz, window, spins = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:]


def served(report: Path):
    """(req/s, p50 µs, p99 µs) from load_driver's "[server] W1 C=1: ..." line."""
    found = re.search(r"\[server\] W1 C=1: (\d+) req/s, p50 (\d+) us, p99 (\d+) us", report.read_text())
    if found is None:
        raise SystemExit(f"no W1 C=1 line in {report}")
    return tuple(float(value) for value in found.groups())


print("| spin µs | req/s | p50 µs | p99 µs | server CPU µs per request |")
print("|--:|--:|--:|--:|--:|")
for spin in spins:
    rows, cpu = [], []
    for r in range(1, rounds + 1):
        rate, p50, p99 = served(out / f"spin{spin}-{r}.md")
        rows.append((rate, p50, p99))
        ticks = int((out / f"spin{spin}-{r}.ticks").read_text())
        # The window and the warm-up second were both measured.
        cpu.append(ticks / hz * 1e6 / (rate * (window + 1)))
    median = [statistics.median(column) for column in zip(*rows)]
    print(f"| {spin} | {median[0]:.0f} | {median[1]:.0f} | {median[2]:.0f} | {statistics.median(cpu):.0f} |")
PY
