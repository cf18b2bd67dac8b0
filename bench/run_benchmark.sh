#!/usr/bin/env bash
# Builds the project, exports the example repository into a temporary directory and runs one
# of the benchmarks on it, writing its report into docs/:
#
#   batching  bench/load_driver (in-process batch sweep, then torchbricks-server under
#             closed-loop load) with its defaults; report docs/benchmark-latest.md.
#   floor     bench/floor_benchmark: torchbricks-server side by side with the transport floor
#             (bench/floor_server), the in-process runs and the Python torchbricks + grpcio
#             server (bench/python_server.py); report docs/benchmark-floor-latest.md.
#
#   bench/run_benchmark.sh batching                     # full run (~W x (7 + 4) x 6 s)
#   bench/run_benchmark.sh batching --seconds 1 --concurrency 1,4 --workloads W1
#   bench/run_benchmark.sh floor                        # about 4 minutes on 2 cores
#   SKIP_BUILD=1 bench/run_benchmark.sh floor --rounds 5 --seconds 5
# Extra arguments go to the benchmark's binary (a later flag overrides an earlier one); set
# SKIP_BUILD=1 to reuse an existing build/.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bench/run_benchmark.sh batching|floor [benchmark flags]"
kind="${1:-}"
case "$kind" in
  batching | floor) shift ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/build.sh
fi

repository="$(mktemp -d -t "torchbricks-$kind-XXXXXX")"
trap 'rm -rf "$repository"' EXIT
.venv/bin/python examples/build_example_repository.py "$repository" >&2

if [[ "$kind" == batching ]]; then
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')" >&2
  build/bench/load_driver --repository "$repository" \
    --server-binary build/server/torchbricks-server \
    --out docs/benchmark-latest.md "$@"
else
  build/bench/floor_benchmark --repository "$repository" --python-server bench/python_server.py \
    --out docs/benchmark-floor-latest.md "$@"
fi
