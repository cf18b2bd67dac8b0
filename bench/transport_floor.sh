#!/usr/bin/env bash
# The gRPC transport floor of W1: the same request (raw_images [1,3,100,200] FP32, 240 KB)
# sent to a package whose only brick returns three numbers of it, so the in-process run is
# ~4 µs and whatever the server's p50 is above that is transport and request handling.
#
#   bench/transport_floor.sh [extra load_driver flags]     # after scripts/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repository="$(mktemp -d -t torchbricks-floor-XXXXXX)"
trap 'rm -rf "$repository"' EXIT
.venv/bin/python - "$repository" <<'PY'
import sys
import torch
from torch import nn
sys.path.insert(0, "clients/python/exporter")
from torchbricks_export import export_brick_collection

class Corner(nn.Module):
    def forward(self, raw_images: torch.Tensor) -> torch.Tensor:
        return raw_images[:, 0, 0, :3].clone()

# Named "classifier" with the W1 input so that load_driver's W1 drives it unchanged.
export_brick_collection({"corner": {"module": Corner(), "input_names": ["raw_images"], "output_names": ["corner"]}},
                        f"{sys.argv[1]}/classifier/1", example_inputs={"raw_images": torch.rand(2, 3, 100, 200)})
open(f"{sys.argv[1]}/classifier/config.pbtxt", "w").write(
    "max_batch_size: 8\ninstance_group { kind: KIND_CPU count: 1 intra_op_threads: 1 }\n")
PY
build/bench/load_driver --repository "$repository" --workloads W1 --concurrency 1 \
  --inprocess-batches 1 --seconds 5 "$@"
