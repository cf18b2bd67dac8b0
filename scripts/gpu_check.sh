#!/usr/bin/env bash
# The GPU check of issue 21, as one script for a lent GPU machine (torch 2.11 of the same wheel
# build in its python3, no gRPC C++ libraries): it unpacks the bundle of
# scripts/make_gpu_bundle.sh, exports the example repository with that machine's torch, serves
# it twice — KIND_CPU and KIND_GPU instances — checks that GPU outputs match CPU outputs
# (rtol 1e-3), and measures W2 (resnet18_classifier, one [1,3,32,32] row per request) served
# at concurrency 64 on GPU and CPU, against the same TorchScript bricks run in-process on the
# GPU at batch 64. Writes results to $OUT (or /tmp/gpu-check). Usage, from the checkout:
#
#   bash scripts/gpu_check.sh BUNDLE.tar.xz SOURCE_DIR   # SOURCE_DIR holds examples/, clients/python/
set -uo pipefail
bundle_tar=$(realpath "$1")
src=$(realpath "$2")
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
work=/tmp/tb-gpu
rm -rf "$work" && mkdir -p "$work"
exec > >(tee "$out/gpu_check.log") 2>&1
PYTHON=${PYTHON:-python3}
date -u
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"
tar -C "$work" -xJf "$bundle_tar"
bundle="$work/gpu-bundle"
torch_lib=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib:$bundle/lib"
export TORCHBRICKS_PYTHON_PROTOS="$bundle/python/generated"
export PYTHONPATH="$src/clients/python/client:$src/clients/python/exporter"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.device_count())'
ldd "$bundle/bin/torchbricks-server" | grep -E "not found|torch" | head -20

echo "== exporting the example repository with this machine's torch"
"$PYTHON" "$src/examples/build_example_repository.py" "$work/repo" > "$work/export.log" 2>&1 \
  || { tail -30 "$work/export.log"; exit 1; }
for kind in cpu gpu; do
  cp -r "$work/repo" "$work/repo_$kind"
done
"$PYTHON" - "$work" <<'PY'
import sys
from pathlib import Path
work = Path(sys.argv[1])
groups = {"cpu": "instance_group { kind: KIND_CPU count: 2 intra_op_threads: 8 }",
          "gpu": "instance_group { kind: KIND_GPU count: 2 gpus: [0] }"}
for kind, group in groups.items():
    for model in ("classifier", "resnet18_classifier", "scene_classifier"):
        path = work / f"repo_{kind}" / model / "config.pbtxt"
        lines = [l for l in path.read_text().splitlines()
                 if not l.startswith(("instance_group", "max_batch_size", "dynamic_batching", "parameters"))]
        lines += ["max_batch_size: 64", "dynamic_batching { max_queue_delay_microseconds: 2000 }", group]
        path.write_text("\n".join(lines) + "\n")
print("configs written")
PY

start_server() {  # kind port
  "$bundle/bin/torchbricks-server" --model-repository "$work/repo_$1" --grpc-address 127.0.0.1 \
    --grpc-port "$2" --metrics-port "$(($2 + 1))" > "$work/server_$1.out" 2> "$out/server_$1.log" &
  echo $! > "$work/server_$1.pid"
}
start_server cpu 18001
start_server gpu 18011
"$PYTHON" - <<'PY'
import time, grpc
from torchbricks_serve import InferenceClient
for port in (18001, 18011):
    deadline = time.time() + 240
    while True:
        try:
            with InferenceClient(f"127.0.0.1:{port}", timeout=5) as c:
                if c.server_ready():
                    print("ready", port); break
        except grpc.RpcError:
            pass
        if time.time() > deadline:
            print("NOT READY", port); break
        time.sleep(1)
PY

echo "== GPU outputs against CPU outputs"
"$PYTHON" - "$out" <<'PY'
import io, json, sys
import numpy as np
from PIL import Image
from torchbricks_serve import InferenceClient
rng = np.random.default_rng(3)
def jpeg(seed):
    buf = io.BytesIO(); Image.fromarray(np.random.default_rng(seed).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, "JPEG"); return buf.getvalue()
cases = {"classifier": {"raw_images": rng.random((4, 3, 100, 200), dtype=np.float32)},
         "resnet18_classifier": {"raw": rng.random((8, 3, 32, 32), dtype=np.float32)},
         "scene_classifier": {"image": np.array([jpeg(1), jpeg(2)], dtype=object)}}
report = {}
with InferenceClient("127.0.0.1:18001", timeout=120) as cpu, InferenceClient("127.0.0.1:18011", timeout=120) as gpu:
    for model, inputs in cases.items():
        entry = {}
        try:
            a = cpu.infer(model, inputs).outputs
            b = gpu.infer(model, inputs).outputs
            for name in sorted(a):
                x, y = np.asarray(a[name]), np.asarray(b[name])
                if x.dtype == object:
                    entry[name] = f"{len(y)} PNG files"
                    continue
                ok = x.shape == y.shape and np.allclose(x, y, rtol=1e-3, atol=1e-4)
                entry[name] = {"match": bool(ok), "max_abs_diff": float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.shape == y.shape and x.size else None}
            config = gpu.model_config(model)
            entry["gpu_config_instance_group"] = str(config.config.instance_group).replace("\n", " ")
        except Exception as error:  # noqa: BLE001 - the report says what failed
            entry["error"] = repr(error)[:600]
        report[model] = entry
print(json.dumps(report, indent=1))
json.dump(report, open(f"{sys.argv[1]}/parity.json", "w"), indent=1)
PY

echo "== in-process CUDA: the exported TorchScript bricks of resnet18_classifier at batch 64"
"$PYTHON" - "$work/repo/resnet18_classifier/1/modules" "$out" <<'PY'
import json, sys, time, torch
modules = sys.argv[1]
result = {}
if torch.cuda.is_available():
    pre, back, head = (torch.jit.load(f"{modules}/{n}.pt", map_location="cuda").eval() for n in ("preprocessor", "backbone", "head"))
    x = torch.rand(64, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        for _ in range(20): head(back(pre(x)))
        torch.cuda.synchronize()
        for label, pinned in (("device_input", False), ("host_input_pinned", True)):
            host = torch.rand(64, 3, 32, 32).pin_memory() if pinned else None
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 3:
                inp = host.to("cuda", non_blocking=True) if pinned else x
                out = head(back(pre(inp)))
                if pinned: out[0].cpu()
                n += 1
            torch.cuda.synchronize()
            result[label] = {"batches_per_s": n / (time.perf_counter() - t0), "rows_per_s": 64 * n / (time.perf_counter() - t0)}
print(json.dumps(result, indent=1))
json.dump(result, open(f"{sys.argv[2]}/inprocess_cuda.json", "w"), indent=1)
PY

echo "== served W2 at concurrency 64 (one row per request)"
for kind in gpu cpu; do
  port=$([ $kind = gpu ] && echo 18011 || echo 18001)
  timeout 150 "$bundle/bin/torchbricks-perf" -m resnet18_classifier -u "127.0.0.1:$port" \
    --concurrency-range 64 --max-threads 16 --measurement-interval 4000 --max-trials 6 \
    --json "$out/perf_${kind}_c64.json" 2>&1 | tail -8
done
timeout 100 "$bundle/bin/torchbricks-perf" -m resnet18_classifier -u 127.0.0.1:18011 -b 64 \
  --concurrency-range 2 --measurement-interval 4000 --max-trials 5 --json "$out/perf_gpu_b64.json" 2>&1 | tail -6

for kind in cpu gpu; do kill -TERM "$(cat "$work/server_$kind.pid")" 2>/dev/null; done
sleep 3
for kind in cpu gpu; do kill -KILL "$(cat "$work/server_$kind.pid")" 2>/dev/null; done
grep -iE "cuda|device|instance" "$out/server_gpu.log" | head -20
echo "gpu_check: done"
