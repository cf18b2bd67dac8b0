#!/usr/bin/env bash
# Issue 25's floor benchmark on a machine with cores to spare (the lent GPU machine has 16),
# as one script: it unpacks the bundle of scripts/make_gpu_bundle.sh, exports the example
# repository with that machine's torch, gives both models the plain config
# (bench/plain_repository.sh), and runs bench/floor_benchmark twice: with the load generator
# on its own cores (the first 4, or 1 on a small machine) and the in-process runs and servers
# on the rest, then with everything sharing every core. Reports in $OUT (default
# /tmp/cpu-floor): floor-separate.md, floor-shared.md. Usage, from the checkout:
#
#   bash scripts/cpu_floor_check.sh BUNDLE.tar.xz SOURCE_DIR   # SOURCE_DIR holds examples/, bench/, clients/python/
set -euo pipefail
bundle_tar=$(realpath "$1")
src=$(realpath "$2")
out=${OUT:-/tmp/cpu-floor}
work=${WORK:-/tmp/tb-cpu-floor}
PYTHON=${PYTHON:-python3}
mkdir -p "$out"
rm -rf "$work" && mkdir -p "$work"
exec > >(tee "$out/cpu_floor_check.log") 2>&1
date -u
tar -C "$work" -xJf "$bundle_tar"
bundle="$work/gpu-bundle"
torch_lib=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib:$bundle/lib"
export PYTHONPATH="$src/clients/python/client:$src/clients/python/exporter"

cpus=$(nproc)
client_cpus=$((cpus >= 8 ? 4 : 1))
if ((cpus < 2)); then
  echo "cpu_floor_check: needs at least 2 CPUs, this machine has $cpus" >&2
  exit 2
fi
client="0-$((client_cpus - 1))"
server="$client_cpus-$((cpus - 1))"
server_count=$((cpus - client_cpus))
echo "== $cpus CPUs: load generator on $client, in-process runs and servers on $server"

"$PYTHON" "$src/examples/build_example_repository.py" "$work/example" > "$work/export.log" 2>&1 ||
  { tail -30 "$work/export.log"; exit 1; }
bash "$src/bench/plain_repository.sh" "$work/example" "$work/plain" classifier,resnet18_classifier

floor() {  # name, extra flags...
  local name=$1
  shift
  "$bundle/bin/floor_benchmark" --repository "$work/plain" \
    --server-binary "$bundle/bin/torchbricks-server" --floor-binary "$bundle/bin/floor_server" \
    --out "$out/floor-$name.md" "$@"
}
floor separate --server-cpus "$server" --client-cpus "$client" --w2-threads "$server_count"
floor shared --w2-threads "$cpus"
date -u
