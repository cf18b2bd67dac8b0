#!/usr/bin/env bash
# Installs dependencies (scripts/setup.sh) and builds the project into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > build.cmake.log 2>&1 \
  || { cat build.cmake.log; exit 1; }
rm -f build.cmake.log
cmake --build build --parallel "$(nproc)"
