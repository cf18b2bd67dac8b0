#!/usr/bin/env bash
# Builds the project, exports the example repository into a temporary directory and runs
# bench/floor_benchmark: torchbricks-server side by side with the transport floor
# (bench/floor_server), the in-process runs and the Python torchbricks + grpcio server
# (bench/python_server.py), writing the report to docs/benchmark-floor-latest.md.
#
#   bench/run_floor_benchmark.sh                 # about 4 minutes on 2 cores
#   SKIP_BUILD=1 bench/run_floor_benchmark.sh --rounds 5 --seconds 5
# Extra arguments go to floor_benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/build.sh
fi
repository="$(mktemp -d -t torchbricks-floor-XXXXXX)"
trap 'rm -rf "$repository"' EXIT
.venv/bin/python examples/build_example_repository.py "$repository" >&2
build/bench/floor_benchmark --repository "$repository" --python-server bench/python_server.py \
  --out docs/benchmark-floor-latest.md "$@"
