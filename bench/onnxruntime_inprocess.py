"""ONNX Runtime (CPU, PyPI `onnxruntime`) in-process on the benchmark's two workloads, the baseline
that bench/compare_formats.sh sets beside the server's own in-process points:

  W1  the torchbricks README classifier, raw_images [1, 3, 100, 200], batch 1, one intra-op thread:
      p50 of one run (as floor_benchmark's "in-process W1 b1")
  W2  the README resnet18 classifier, raw [16, 3, 32, 32], batch 16, --w2-threads intra-op threads:
      images per second (as floor_benchmark's "in-process W2 b16")

Each collection is built exactly as examples/build_example_repository.py builds it (the real
torchbricks), exported for INFERENCE with torchbricks' own `export_bricks_as_onnx` (batch dynamic),
checked against the eager collection (rtol 1e-4), then timed with `InferenceSession.run` on the
same inputs for --seconds after --warmup-seconds. Runs through Python: at batch 1 that adds the
binding's cost (a few µs) to ONNX Runtime's own.

    .venv/bin/python bench/onnxruntime_inprocess.py [--seconds 3] [--w2-threads 2] [--json OUT]
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import build_example_repository as examples  # noqa: E402

W1_SHAPE, W2_SHAPE = (3, 100, 200), (3, 32, 32)


@contextlib.contextmanager
def stdout_silenced():
    """Points file descriptor 1 at /dev/null for the block (C++ writes do not pass sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export(collection, path: Path, name: str, item_shape) -> Path:
    from torchbricks.brick_collection_utils import export_bricks_as_onnx
    example = {name: torch.rand(2, *item_shape)}
    # export_bricks_as_onnx exports with verbose=True: its graph dump (written by C++) is not wanted.
    with warnings.catch_warnings(), stdout_silenced():
        warnings.simplefilter("ignore")
        # dynamo=False: torch 2.11's default exporter goes through torch.export, which refuses
        # torchbricks' Preprocessor (torchvision's normalize branches on `(std == 0).any()`).
        export_bricks_as_onnx(path, collection, named_inputs=example, dynamic_batch_size=True,
                              tags={"MODEL"}, dynamo=False)
    # The exporter restores the mode of torchbricks' wrapper module, a fresh one in training mode,
    # on everything under it: the collection comes back in training mode.
    collection.eval()
    return path


def session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check(collection, ort: onnxruntime.InferenceSession, name: str, batch: torch.Tensor) -> None:
    """ONNX Runtime's outputs equal the eager collection's (rtol 1e-4) for every float output."""
    eager = collection(named_inputs={name: batch}, tags={"MODEL"}, return_inputs=False)
    got = dict(zip([o.name for o in ort.get_outputs()], ort.run(None, {name: batch.numpy()})))
    for key, value in eager.items():
        if key in got and value.is_floating_point():
            np.testing.assert_allclose(got[key], value.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def timed_runs(ort: onnxruntime.InferenceSession, name: str, batch: np.ndarray, seconds: float,
               warmup: float) -> list:
    feed = {name: batch}
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        ort.run(None, feed)
    durations = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        ort.run(None, feed)
        durations.append(time.perf_counter() - start)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--warmup-seconds", type=float, default=1)
    parser.add_argument("--w2-threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not examples.import_torchbricks():
        sys.exit("torchbricks is not importable: run scripts/setup.sh")
    torch.manual_seed(0)
    w1_model = examples.torchbricks_classifier().eval()
    w2_model = examples.torchbricks_resnet18_classifier().eval()
    generator = np.random.default_rng(1)
    results = {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        w1 = session(export(w1_model, Path(folder) / "w1.onnx", "raw_images", W1_SHAPE), 1)
        w2 = session(export(w2_model, Path(folder) / "w2.onnx", "raw", W2_SHAPE), args.w2_threads)
        w1_batch = generator.random((1, *W1_SHAPE), dtype=np.float32)
        w2_batch = generator.random((16, *W2_SHAPE), dtype=np.float32)
        check(w1_model, w1, "raw_images", torch.from_numpy(w1_batch))
        check(w2_model, w2, "raw", torch.from_numpy(w2_batch))
        w1_runs = timed_runs(w1, "raw_images", w1_batch, args.seconds, args.warmup_seconds)
        w2_runs = timed_runs(w2, "raw", w2_batch, args.seconds, args.warmup_seconds)
    results["w1_b1_p50_us"] = statistics.median(w1_runs) * 1e6
    results["w2_b16_images_per_s"] = 16 * len(w2_runs) / sum(w2_runs)
    print(f"onnxruntime {results['onnxruntime']}: in-process W1 b1 p50 {results['w1_b1_p50_us']:.0f} µs, "
          f"in-process W2 b16 {results['w2_b16_images_per_s']:.0f} img/s ({args.w2_threads} threads)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
