#!/usr/bin/env bash
# Runs bench/floor_benchmark of two (or more) build folders in alternating rounds on one
# repository, and prints their figures side by side (median over rounds): in-process W1/W2,
# served W1/W2 and the transport floor. Each build's floor_benchmark runs its own in-process
# points (with the libtorch that build linked) and its own server. Used for issue 21's
# libtorch 1.13 (Debian) against the torch 2.11 wheel (docs/TORCH.md, "Performance").
#
#   bench/compare_builds.sh REPOSITORY ROUNDS LABEL=BUILD_DIR[@REPOSITORY] ...
#   bench/compare_builds.sh /tmp/repo113 3 debian-1.13=/tmp/build113 wheel-2.11=build
#   bench/compare_builds.sh /tmp/ts 3 torchscript=build aot=build@/tmp/aoti   # one build, two repositories
#
# A pair's @REPOSITORY replaces the first argument's repository for that label (the same
# models exported differently: bench/compare_formats.sh).
# Reports go to $OUT (default /tmp/compare-builds); extra floor_benchmark flags in
# $FLOOR_FLAGS (default "--rounds 1 --seconds 3").
set -euo pipefail
repository=$(realpath "$1")
rounds=$2
shift 2
out=${OUT:-/tmp/compare-builds}
mkdir -p "$out"
for round in $(seq "$rounds"); do
  for pair in "$@"; do
    label=${pair%%=*}
    target=${pair#*=}
    build=$(realpath "${target%%@*}")
    models=$repository
    [[ $target == *@* ]] && models=$(realpath "${target#*@}")
    echo "== round $round: $label ($build on $models)"
    # shellcheck disable=SC2086  # FLOOR_FLAGS is a list of flags
    "$build/bench/floor_benchmark" --repository "$models" \
      --server-binary "$build/server/torchbricks-server" --floor-binary "$build/bench/floor_server" \
      ${FLOOR_FLAGS:---rounds 1 --seconds 3} --out "$out/$label-$round.md" > "$out/$label-$round.log" 2>&1 \
      || { tail -20 "$out/$label-$round.log"; exit 1; }
  done
done
labels=()
for pair in "$@"; do labels+=("${pair%%=*}"); done
python3 - "$out" "$rounds" "${labels[@]}" << 'PY'
import statistics
import sys
from pathlib import Path

out, rounds, labels = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]


def points(report: Path) -> dict:
    """{point: (p50 µs, req/s)} from the report's table of points."""
    found = {}
    for line in report.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (cells[0].startswith(("in-process", "floor", "server"))):
            found[cells[0]] = tuple(float(c) if c else None for c in cells[1:3])
    return found


runs = {label: [points(out / f"{label}-{r}.md") for r in range(1, rounds + 1)] for label in labels}
names = [name for name in runs[labels[0]][0]]
print("| point | " + " | ".join(f"{l} p50 µs | {l} req/s" for l in labels) + " |")
print("|---|" + "--:|--:|" * len(labels))
for name in names:
    row = [name]
    for label in labels:
        for column in (0, 1):
            values = [run[name][column] for run in runs[label] if name in run and run[name][column] is not None]
            row.append(f"{statistics.median(values):.0f}" if values else "")
    print("| " + " | ".join(row) + " |")
PY
