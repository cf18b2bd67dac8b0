#!/usr/bin/env bash
# Triton's perf_analyzer and our torchbricks-perf on the same load, side by side: one
# torchbricks-server on the example repository, one model, closed-loop concurrency levels, the
# same measurement window, stability band and trial limit, random FP32 inputs, sent in the
# request and then through system shared memory. For each load and level the two tools run in
# turn, ROUNDS times, alternating which goes first; a table per load shows the median of the
# rounds for each tool, the difference (torchbricks-perf against perf_analyzer) and what each
# client cost: its CPU time (user + system, % of one core over its run) and its minor page
# faults per second (/usr/bin/time).
#
#   bench/perf_analyzer_vs_perf.sh [REPOSITORY]   # after scripts/setup.sh and scripts/build.sh
#
# REPOSITORY: a model repository (default: the example repository, built into a temporary folder).
# Environment: MODEL (classifier), LEVELS ("1 2 4"), WINDOW_MS (2000), STABILITY (10),
# MAX_TRIALS (10), ROUNDS (3), THREADS (4: perf_analyzer's --max-threads and ours), SHM ("none
# system": the --shared-memory modes to run), INPUT_DATA (a JSON file in perf_analyzer's
# --input-data format, given to both tools; default: random inputs), OUT (a folder
# to keep the CSVs and logs in; default a temporary one). For scene_classifier, whose input is
# one encoded image per item, write INPUT_DATA with bench/encoded_images_input_data.py. perf_analyzer runs in its async mode
# (-a), as torchbricks-perf always does. Exit code 0 when every run succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-classifier}
LEVELS=${LEVELS:-"1 2 4"}
WINDOW_MS=${WINDOW_MS:-2000}
STABILITY=${STABILITY:-10}
MAX_TRIALS=${MAX_TRIALS:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-4}
SHM=${SHM:-"none system"}
SERVER=build/server/torchbricks-server
PERF=build/clients/cpp/perf/torchbricks-perf
for binary in "$SERVER" "$PERF"; do
  [[ -x $binary ]] || { echo "$binary is not built (scripts/build.sh)" >&2; exit 2; }
done
scripts/perf_analyzer.sh --version >/dev/null 2>&1 || { echo "perf_analyzer: run scripts/setup.sh" >&2; exit 2; }

work=$(mktemp -d -t perf-analyzer-vs-perf-XXXXXX)
out=${OUT:-$work}
mkdir -p "$out"
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

repository=${1:-}
if [[ -z $repository ]]; then
  repository=$work/repository
  PYTHONPATH=clients/python/client:clients/python/exporter \
    .venv/bin/python examples/build_example_repository.py "$repository" >/dev/null
fi

"$SERVER" --model-repository "$repository" --grpc-address 127.0.0.1 --grpc-port 0 \
  --allow-metrics false --allow-client-shm true >"$work/server.out" 2>"$out/server.log" &
server_pid=$!
port=""
for _ in $(seq 600); do
  port=$(sed -n 's/.*serving gRPC on [^ ]*:\([0-9]*\).*/\1/p' "$work/server.out")
  [[ -n $port ]] && grep -q " ready$" "$out/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "the server did not start" >&2; exit 1; }
url=127.0.0.1:$port

common=(-u "$url" -m "$MODEL" -p "$WINDOW_MS" -s "$STABILITY" -r "$MAX_TRIALS" --max-threads "$THREADS")
[[ -n ${INPUT_DATA:-} ]] && common+=(--input-data "$INPUT_DATA")
echo "$(scripts/perf_analyzer.sh --version 2>&1 | head -1) and torchbricks-perf on $url," \
  "model $MODEL, windows of $WINDOW_MS ms, stability $STABILITY %, $ROUNDS rounds"
# One run of one tool at one level: its CSV, its log, and its cost (/usr/bin/time: wall, user,
# system seconds, minor page faults). A run that fails (perf_analyzer exits 1 when no 3 windows
# agree within MAX_TRIALS) is tried once more.
run() {
  local tool=$1 shm=$2 level=$3 round=$4 attempt
  local name=$out/$tool-$shm-c$level-r$round
  local command=(scripts/perf_analyzer.sh -i grpc -a)
  [[ $tool == tb ]] && command=("$PERF" -i grpc)
  for attempt in 1 2; do
    if /usr/bin/time -f "%e %U %S %R" -o "$name.time" "${command[@]}" "${common[@]}" \
      --shared-memory "$shm" --concurrency-range "$level" -f "$name.csv" >"$name.log" 2>&1; then
      echo "  shm $shm c=$level round $round $tool: $(sed -n 2p "$name.csv" | cut -d, -f2) infer/s"
      return 0
    fi
    echo "  shm $shm c=$level round $round $tool: failed (attempt $attempt):" \
      "$(grep -m1 -i 'fail\|error' "$name.log")"
  done
  cat "$name.log" >&2
  return 1
}
for shm in $SHM; do
  for level in $LEVELS; do
    for round in $(seq "$ROUNDS"); do
      if ((round % 2)); then
        run pa "$shm" "$level" "$round" && run tb "$shm" "$level" "$round"
      else
        run tb "$shm" "$level" "$round" && run pa "$shm" "$level" "$round"
      fi
    done
  done
done

python3 - "$out" "$SHM" "$LEVELS" "$ROUNDS" <<'PY'
import csv, statistics, sys
from pathlib import Path

out, modes, levels, rounds = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])

def median(tool, shm, level, what):
    values = []
    for round in range(1, rounds + 1):
        name = out / f"{tool}-{shm}-c{level}-r{round}"
        wall, user, system, faults = map(float, name.with_suffix(".time").read_text().split()[-4:])
        if what == "cpu":
            values.append(100 * (user + system) / wall)
        elif what == "faults":
            values.append(faults / wall)
        else:
            with open(name.with_suffix(".csv")) as f:
                values.append(float(next(csv.DictReader(f))[what]))
    return statistics.median(values)

# (what, heading, show the difference)
columns = [("Inferences/Second", "infer/s", True), ("p50 latency", "p50 µs", True), ("p99 latency", "p99 µs", False),
           ("Server Compute Infer", "server infer µs", False), ("cpu", "client CPU %", False),
           ("faults", "client faults/s", False)]
for shm in modes:
    print(f"\n--shared-memory {shm} (PA perf_analyzer, TB torchbricks-perf; medians of {rounds} rounds)\n")
    header = ["c"]
    for _, heading, diff in columns:
        header += [f"{heading} PA", f"{heading} TB"] + (["diff"] if diff else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["--:"] * len(header)) + "|")
    for level in levels:
        cells = [level]
        for what, _, diff in columns:
            pa, tb = median("pa", shm, level, what), median("tb", shm, level, what)
            cells += [f"{pa:.0f}", f"{tb:.0f}"] + ([f"{(tb - pa) / pa * 100:+.1f} %"] if diff else [])
        print("| " + " | ".join(cells) + " |")
PY
