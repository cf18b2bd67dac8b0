#!/usr/bin/env bash
# Tail latency with a plain config (issue 25): W2 (resnet18 at 32x32, [1,3,32,32] FP32 per
# request) served with nothing in config.pbtxt but `max_batch_size: 64` and
# `dynamic_batching { max_queue_delay_microseconds: 2000 }`, driven at concurrency 16 and 64
# by this build's bench/load_driver (a closed loop of async requests; it needs nothing but
# ModelInfer, so it drives old builds too). Servers run in alternating rounds; the report
# gives each label's median req/s, p50, p99 and p99/p50, so a tail regression shows next time,
# and the ratio of req/s to the best in-process rows/s at batch C that a self-configuring
# server of the same round measured at load (every layout it tried; "—" without one), and
# the cores the server, the load generator and nobody used during each point.
#
#   bench/tail_latency.sh REPOSITORY ROUNDS LABEL=BUILD[@REPOSITORY][%FLAG=VALUE...] ...
#   bench/tail_latency.sh /tmp/example 3 main=build                 # defaults (self-configuring)
#   bench/tail_latency.sh /tmp/example 3 old=/tmp/old/build main=build \
#       fixed=build%--self-configuration-seconds=0                   # 1 instance, as before
#
# REPOSITORY holds resnet18_classifier (examples/build_example_repository.py); a pair's
# @REPOSITORY replaces it for that label (packages an old build can read). Flags after % go
# to that label's server. $SECONDS_PER_POINT (default 6) is each window; $BUSY=1 adds one
# busy process for the whole run (a load generator that takes a core, as a Python client
# does); $SERVER_CPUS and $DRIVER_CPUS (taskset -c lists) keep the servers and the load
# generator on separate cores. Reports in $OUT (default /tmp/tail-latency). Every server
# started is stopped by PID.
set -euo pipefail
# shellcheck source=bench/await_server.sh
source "$(dirname "$0")/await_server.sh"
repository=$(realpath "$1")
rounds=$2
shift 2
out=${OUT:-/tmp/tail-latency}
window=${SECONDS_PER_POINT:-6}
driver=$(realpath "$(dirname "$0")/../build/bench/load_driver")
mkdir -p "$out"

# taskset prefixes for $SERVER_CPUS and $DRIVER_CPUS (none when unset).
server_pin=()
driver_pin=()
[[ -n ${SERVER_CPUS:-} ]] && server_pin=(taskset -c "$SERVER_CPUS")
[[ -n ${DRIVER_CPUS:-} ]] && driver_pin=(taskset -c "$DRIVER_CPUS")

busy_pid=""
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [[ -n $busy_pid ]] && kill "$busy_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
if [[ ${BUSY:-0} == 1 ]]; then
  "${driver_pin[@]}" bash -c 'while :; do :; done' &
  busy_pid=$!
fi

for round in $(seq "$rounds"); do
  for pair in "$@"; do
    label=${pair%%=*}
    rest=${pair#*=}
    flags=()
    if [[ $rest == *%* ]]; then
      IFS=% read -r -a parts <<< "$rest"
      rest=${parts[0]}
      flags=("${parts[@]:1}")
    fi
    build=$(realpath "${rest%%@*}")
    source=$repository
    [[ $rest == *@* ]] && source=$(realpath "${rest#*@}")
    "$(dirname "$0")/plain_repository.sh" "$source" "$out/repository-$label" resnet18_classifier
    log=$out/$label-$round.server.log
    "${server_pin[@]}" "$build/server/torchbricks-server" --model-repository "$out/repository-$label" \
      --grpc-address 127.0.0.1 --grpc-port 0 --metrics-port 0 "${flags[@]}" \
      > "$out/$label-$round.server.out" 2> "$log" &
    server_pid=$!
    port=$(await_server "$out/$label-$round.server.out" "$log" "$server_pid")
    echo "== round $round: $label ($build, port $port)"
    "${driver_pin[@]}" "$driver" --repository "$out/repository-$label" --address "127.0.0.1:$port" \
      --server-pid "$server_pid" --workloads W2 \
      --concurrency 16,64 --seconds "$window" --warmup-seconds 1 --inprocess-batches 1 \
      --inprocess-threads 1 > "$out/$label-$round.md" 2>&1 || { tail -20 "$out/$label-$round.md"; exit 1; }
    kill "$server_pid" && wait "$server_pid" 2> /dev/null || true
    server_pid=""
  done
done

labels=()
for pair in "$@"; do labels+=("${pair%%=*}"); done
python3 - "$out" "$rounds" "${labels[@]}" << 'PY'
import re
import statistics
import sys
from pathlib import Path

out, rounds, labels = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]


def number(cell: str) -> float:
    return float(cell) if cell not in ("?", "-") else float("nan")


def served(report: Path) -> dict:
    """{C: (req/s, p50 µs, p99 µs, server cores, client cores, idle cores)} from
    load_driver's server table (cores NaN where it has none)."""
    found = {}
    for line in report.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] in ("16", "64"):
            cores = [number(c) for c in cells[10:13]] if len(cells) >= 13 else [float("nan")] * 3
            found[int(cells[0])] = (float(cells[1]), float(cells[2]), float(cells[4]), *cores)
    return found


def calibrated(log: Path) -> dict:
    """{batch: best rows/s over layouts} from the server's self-configuration line, if any."""
    best = {}
    for layout, batch, rate in re.findall(r"(\d+x\d+) b(\d+) (\d+) rows/s", log.read_text()):
        best[int(batch)] = max(best.get(int(batch), 0), int(rate))
    return best


print("| label | C | req/s | p50 µs | p99 µs | p99/p50 | req/s ÷ best in-process at batch C "
      "| server cores | client cores | idle cores |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
# The in-process limit of a round: the best rows/s any self-configuring server of that round
# measured at load (all layouts it tried), at batch C.
limits = []
for r in range(1, rounds + 1):
    merged = {}
    for label in labels:
        for batch, rate in calibrated(out / f"{label}-{r}.server.log").items():
            merged[batch] = max(merged.get(batch, 0), rate)
    limits.append(merged)
for label in labels:
    runs = [served(out / f"{label}-{r}.md") for r in range(1, rounds + 1)]
    for c in (16, 64):
        rate = statistics.median(run[c][0] for run in runs)
        p50 = statistics.median(run[c][1] for run in runs)
        p99 = statistics.median(run[c][2] for run in runs)
        ratios = [run[c][0] / limit[c] for run, limit in zip(runs, limits) if limit.get(c)]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "—"
        cores = " | ".join(
            f"{statistics.median(values):.2f}" if (values := [run[c][k] for run in runs if run[c][k] == run[c][k]])
            else "—" for k in (3, 4, 5))
        print(f"| {label} | {c} | {rate:.0f} | {p50:.0f} | {p99:.0f} | {p99 / p50:.2f} | {ratio} | {cores} |")
print()
print("rounds:", ", ".join(f"{label} " + " / ".join(
    f"c16 {served(out / f'{label}-{r}.md')[16][2]:.0f}" for r in range(1, rounds + 1)) + " µs p99"
    for label in labels))
PY
