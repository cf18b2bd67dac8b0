#!/usr/bin/env bash
# The same example models stored as TorchScript, as AOTInductor bricks and as AOTInductor with
# the INFERENCE stage fused into one program, side by side on one build (issue 23): bench/floor_benchmark's in-process and served W1/W2 points for each
# repository in alternating rounds (bench/compare_builds.sh), and ONNX Runtime in-process on
# the same collections (bench/onnxruntime_inprocess.py), once per round.
#
#   bench/compare_formats.sh [ROUNDS]          # after scripts/setup.sh and scripts/build.sh
#
# ROUNDS: default 3. $OUT (default /tmp/compare-formats) keeps the repositories, which are
# reused when present (delete them after changing the exporter), the reports and logs.
# Extra floor_benchmark flags in $FLOOR_FLAGS (default "--rounds 1 --seconds 3").
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=${OUT:-/tmp/compare-formats}
mkdir -p "$out"
# Repository folder -> the exporter's flags ("aot_inductor_fused": every compiled INFERENCE
# brick of a model in one program).
declare -A export_flags=(
  [torchscript]="--module-format torchscript"
  [aot_inductor]="--module-format aot_inductor"
  [aot_inductor_fused]="--module-format aot_inductor --fused-stages INFERENCE"
)
for format in torchscript aot_inductor aot_inductor_fused; do
  if [[ ! -f $out/$format/resnet18_classifier/config.pbtxt ]]; then
    echo "== exporting the example repository as $format"
    rm -rf "${out:?}/$format"
    # Compiled up to batch 64: floor_benchmark runs W2 in-process at batches 16 and 64.
    # shellcheck disable=SC2086  # the flags are words
    .venv/bin/python examples/build_example_repository.py "$out/$format" ${export_flags[$format]} \
      --compiled-max-batch 64 \
      > "$out/export-$format.log" 2>&1 || { tail -20 "$out/export-$format.log"; exit 1; }
  fi
done
for round in $(seq "$rounds"); do
  echo "== round $round: onnxruntime in-process"
  .venv/bin/python bench/onnxruntime_inprocess.py --json "$out/onnxruntime-$round.json" 2>/dev/null
done
OUT=$out bash bench/compare_builds.sh "$out/torchscript" "$rounds" \
  torchscript=build "aot_inductor=build@$out/aot_inductor" "aot_inductor_fused=build@$out/aot_inductor_fused"
python3 - "$out" "$rounds" << 'PY'
import json
import statistics
import sys
from pathlib import Path

out, rounds = Path(sys.argv[1]), int(sys.argv[2])
runs = [json.loads((out / f"onnxruntime-{r}.json").read_text()) for r in range(1, rounds + 1)]
print(f"\nonnxruntime {runs[0]['onnxruntime']} in-process, medians of {rounds} rounds: "
      f"W1 b1 p50 {statistics.median(r['w1_b1_p50_us'] for r in runs):.0f} µs, "
      f"W2 b16 {statistics.median(r['w2_b16_images_per_s'] for r in runs):.0f} img/s")
PY
