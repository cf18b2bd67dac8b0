#!/usr/bin/env bash
# Installs dependencies (scripts/setup.sh) and builds the project into build/.
#
#   bash scripts/build.sh                          # everything: tests, benchmarks, tools
#   bash scripts/build.sh TARGET...                # only these targets (and what they need)
#
# TORCHBRICKS_SETUP_MODE (all, serve or build; default all) is passed to scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "${TORCHBRICKS_SETUP_MODE:-all}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > build.cmake.log 2>&1 \
  || { cat build.cmake.log; exit 1; }
rm -f build.cmake.log
targets=()
for target in "$@"; do targets+=(--target "$target"); done
cmake --build build --parallel "$(nproc)" "${targets[@]}"
