#!/usr/bin/env bash
# Builds the project, exports the example repository into a temporary directory and runs
# bench/load_driver (in-process batch sweep, then torchbricks-server under closed-loop load)
# with its defaults, writing the report to docs/benchmark-latest.md.
#
#   bench/run_benchmarks.sh                      # full run (~W x (7 + 4) x 6 s)
#   bench/run_benchmarks.sh --seconds 1 --concurrency 1,4 --workloads W1
# Extra arguments go to load_driver (a later flag overrides an earlier one); set
# SKIP_BUILD=1 to reuse an existing build/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  bash scripts/build.sh
fi

repository="$(mktemp -d -t torchbricks-bench-XXXXXX)"
trap 'rm -rf "$repository"' EXIT
.venv/bin/python examples/build_example_repository.py "$repository" >&2

echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(
  git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')" >&2
build/bench/load_driver --repository "$repository" \
  --server-binary build/server/torchbricks-server \
  --out docs/benchmark-latest.md "$@"
