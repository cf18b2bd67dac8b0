"""Calls a running torchbricks-server with the Python client (grpcio + numpy, no torch).

    PYTHONPATH=clients/python/client .venv/bin/python examples/client_example.py --server 127.0.0.1:8001

Asks for each model's metadata, sends a batch to its INFERENCE stage, prints the outputs,
then asks only for an intermediate tensor to show graph pruning. Models that take encoded
images (BYTES inputs) get two synthetic scenes as JPEG files, and the PNG drawings they
return are saved under --out.
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "clients" / "python" / "client"),
                str(Path(__file__).resolve().parent)]
from scene import scene  # noqa: E402
from torchbricks_serve import InferenceClient  # noqa: E402


def jpeg_files(count: int) -> np.ndarray:
    """`count` synthetic scenes as JPEG files, in a BYTES array (numpy object array of bytes)."""
    files = np.empty(count, dtype=object)
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(scene(300, 400, seed=i)[0]).save(buffer, format="JPEG", quality=90)
        files[i] = buffer.getvalue()
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:8001")
    parser.add_argument("--out", default="visualizations", help="where drawn PNGs are saved")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with InferenceClient(args.server) as client:
        print("server ready:", client.server_ready())
        for model in sorted({m.name for m in client.repository_index(ready=True).models}):
            metadata = client.model_metadata(model)
            inputs = {}
            for spec in metadata.inputs:
                shape = [2 if dim < 0 else dim for dim in spec.shape]
                inputs[spec.name] = jpeg_files(2) if spec.datatype == "BYTES" else rng.random(shape, dtype=np.float32)
            result = client.infer(model, inputs)
            print(f"\n{model} (version {result.model_version}):")
            for name, array in result.outputs.items():
                if array.dtype == object:  # BYTES: one PNG file per image
                    saved = save_pngs(Path(args.out) / model, name, array)
                    print(f"  {name}: {len(array)} PNG files -> {', '.join(saved)}")
                    continue
                print(f"  {name}: shape {list(array.shape)}, first row {np.round(array.reshape(len(array), -1)[0][:5], 4)}")
            graph = client.model_graph(model)
            first_output = graph.bricks[0].output_names[0]
            pruned = client.infer(model, inputs, outputs=[first_output])
            print(f"  only '{first_output}' (runs just brick '{graph.bricks[0].name}'):",
                  list(pruned.outputs[first_output].shape))


def save_pngs(folder: Path, output: str, pngs: np.ndarray):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, png in enumerate(pngs):
        path = folder / f"{output.replace('/', '.')}-{index}.png"
        path.write_bytes(png)
        paths.append(str(path))
    return paths


if __name__ == "__main__":
    main()
