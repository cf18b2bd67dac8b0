"""What a request for a subset of a fused stage's outputs should run: the fused program (then drop
the outputs nobody asked for) or the per-brick plan of only the bricks it needs. Times, in one
process, the AOTInductor packages of an exported model with a fused stage (the same code the
server runs, through torch's AOTInductor loader): the fused program, every fused brick's own
program in turn (what a full request runs without fusion), and only the bricks the subset needs.

    .venv/bin/python examples/build_example_repository.py /tmp/fused --models resnet18_classifier \\
        --module-format aot_inductor --fused-stages INFERENCE
    PYTHONPATH=clients/python/client:build/python .venv/bin/python bench/fused_subset.py \\
        /tmp/fused/resnet18_classifier/1 --subset features

Prints the p50 of each variant per batch size (docs/PERFORMANCE.md, "Fused stages").
"""
import argparse
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch
from google.protobuf import text_format
from torch._inductor import aoti_load_package

from torchbricks_serve.generated import bricks_pb2


def flat_bricks(collection, prefix: str = "") -> Dict[str, object]:
    bricks = {}
    for node in collection.nodes:
        if node.WhichOneof("content") == "brick":
            bricks[prefix + node.name] = node.brick
        else:
            bricks.update(flat_bricks(node.collection, prefix + node.name + "/"))
    return bricks


def p50_us(run: Callable[[], object], seconds: float) -> float:
    for _ in range(5):
        run()
    times: List[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 20:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def run_bricks(programs, bricks, names: Sequence[str], values: Dict[str, torch.Tensor]) -> None:
    values = dict(values)
    for name in names:
        out = programs[name](*(values[input_name] for input_name in bricks[name].input_names))
        out = [out] if isinstance(out, torch.Tensor) else out
        values.update(zip(bricks[name].output_names, out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--subset", help="the output a subset request asks for (default: the first fused brick's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = text_format.Parse((args.version_dir / "bricks.pbtxt").read_text(), bricks_pb2.BrickCollection())
    (fused,) = manifest.fused_stages
    bricks = flat_bricks(manifest)
    subset = args.subset or bricks[fused.bricks[0]].output_names[0]
    needed, wanted = [], {subset}
    for name in reversed(fused.bricks):  # the fused bricks the subset needs, in run order
        if wanted & set(bricks[name].output_names):
            needed.insert(0, name)
            wanted |= set(bricks[name].input_names)
    programs = {name: aoti_load_package(str(args.version_dir / bricks[name].module_file)) for name in fused.bricks}
    program = aoti_load_package(str(args.version_dir / fused.module_file))
    print(f"{args.version_dir}: fused {list(fused.bricks)}, subset '{subset}' needs {needed}; "
          f"{args.threads} thread(s), p50 µs")
    for batch in args.batches:
        values = {spec.name: torch.rand(batch, *spec.dims[1:]) for spec in fused.compiled.inputs}
        ordered = [values[name] for name in fused.input_names]
        with torch.inference_mode():
            fused_all = p50_us(lambda: program(*ordered), args.seconds)
            bricks_all = p50_us(lambda: run_bricks(programs, bricks, fused.bricks, values), args.seconds)
            bricks_subset = p50_us(lambda: run_bricks(programs, bricks, needed, values), args.seconds)
        print(f"batch {batch:3d}: fused program (any subset) {fused_all:9.0f}   per-brick, all {bricks_all:9.0f}   "
              f"per-brick, subset only {bricks_subset:9.0f}")


if __name__ == "__main__":
    main()
