#!/usr/bin/env bash
# Sets everything up, builds the example model repository with the Python exporter, then
# verifies each model in C++ against the Python reference and prints its INFERENCE graph.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
rm -rf examples/repository
/usr/bin/python3 examples/build_example_repository.py examples/repository
for version_dir in examples/repository/*/1; do
  echo
  echo "== torchbricks verify $version_dir"
  build/server/torchbricks verify "$version_dir"
  echo
  echo "== torchbricks graph $version_dir --stage INFERENCE"
  build/server/torchbricks graph "$version_dir" --stage INFERENCE
done
