#!/usr/bin/env bash
# Issue 25's floor benchmark on a machine with cores to spare (the lent GPU machine has 16),
# as one script: it unpacks the bundle of scripts/make_gpu_bundle.sh, exports the example
# repository with that machine's torch, gives both models the plain config
# (bench/plain_repository.sh), and runs bench/floor_benchmark twice: with the load generator
# on its own physical cores (a quarter of them, at least one) and the in-process runs and
# servers on the rest, then with everything sharing every core. Reports in $OUT (default
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

# The CPUs this process may use, split by physical core (hyperthread siblings stay on one
# side): the load generator takes the first quarter of the cores (at least one), the rest
# goes to the in-process runs and the servers.
read -r client server client_count server_count < <("$PYTHON" - <<'PY'
import os, subprocess
allowed = sorted(os.sched_getaffinity(0))
core_of = {cpu: cpu for cpu in allowed}
try:
    for line in subprocess.run(["lscpu", "-p=CPU,CORE"], capture_output=True, text=True).stdout.splitlines():
        if line and not line.startswith("#"):
            cpu, core = map(int, line.split(","))
            if cpu in core_of:
                core_of[cpu] = core
except (OSError, ValueError):
    pass
cores = sorted(set(core_of.values()))
take = max(1, len(cores) // 4)
client = [c for c in allowed if core_of[c] in cores[:take]]
server = [c for c in allowed if core_of[c] not in cores[:take]]
print(",".join(map(str, client)) or "-", ",".join(map(str, server)) or "-", len(client), len(server))
PY
)
cpus=$((client_count + server_count))
if ((server_count < 1)); then
  echo "cpu_floor_check: needs at least 2 physical cores, this process may use CPUs $client" >&2
  exit 2
fi
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
status=0
floor separate --server-cpus "$server" --client-cpus "$client" --w2-threads "$server_count" ||
  { echo "cpu_floor_check: the separated run failed"; status=1; }
floor shared --w2-threads "$cpus" || { echo "cpu_floor_check: the shared run failed"; status=1; }
date -u
exit $status
