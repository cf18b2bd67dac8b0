"""Draws one example per renderer through a real server and saves the PNGs (docs/images/).

    .venv/bin/python examples/render_gallery.py --out docs/images

Exports a collection with one visualization brick per built-in renderer plus a TorchScript
renderer, all fed with the true annotations of a synthetic scene (examples/scene.py), starts
build/server/torchbricks-server on it, sends the scene as a PNG file and writes
<renderer>.png for every drawing it gets back.
"""
import argparse
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "clients" / "python" / "client"), str(ROOT / "clients" / "python" / "exporter"),
                 str(ROOT / "examples")]
from scene import CLASS_NAMES, scene  # noqa: E402
from torchbricks_export import EncodedImage, export_brick_collection, renderers  # noqa: E402
from torchbricks_serve import InferenceClient  # noqa: E402

THINGS = CLASS_NAMES[1:]  # detection labels: house, tree, car, sun


class Sketch(nn.Module):
    """A TorchScript renderer: the image as a pencil sketch (dark lines where brightness changes)."""

    def forward(self, image: Tensor) -> Tensor:
        grey = image.float().mean(dim=2)
        dx = (grey[:, 1:] - grey[:, :-1]).abs()[:-1, :]
        dy = (grey[1:, :] - grey[:-1, :]).abs()[:, :-1]
        edges = torch.nn.functional.pad((dx + dy).clamp(0, 255), [0, 1, 0, 1])
        paper = (250.0 - edges * 3.0).clamp(0, 255)
        return paper.to(torch.uint8).unsqueeze(2).repeat(1, 1, 3)


def gallery():
    def draw(spec, *values):
        return {"module": spec, "kind": "VISUALIZATION", "input_names": ["image", *values],
                "output_names": [f"{spec.renderer}_drawing"]}

    return {
        "classification": draw(renderers.ImageClassification(class_names=CLASS_NAMES, top_k=3), "class_scores"),
        "segmentation": draw(renderers.SemanticSegmentation(
            alpha=0.55, class_names=CLASS_NAMES, palette=[(0, 0, 0), (230, 60, 200), (250, 230, 40), (40, 230, 230),
                                                          (250, 120, 20)]), "mask"),
        "detection": draw(renderers.ObjectDetection(class_names=CLASS_NAMES, score_threshold=0.5),
                          "boxes", "box_scores", "box_labels"),
        "keypoints": draw(renderers.Keypoints(skeleton=[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]), "keypoints"),
        "heatmap": draw(renderers.Heatmap(alpha=0.45, colormap="jet"), "heat"),
        "torchscript": {"module": renderers.TorchScriptRenderer(Sketch()), "kind": "VISUALIZATION",
                        "input_names": ["image"], "output_names": ["torchscript_drawing"]},
    }


def values_for(image: np.ndarray, truth) -> dict:
    batch = lambda array, dtype=None: torch.as_tensor(np.asarray(array)[None], dtype=dtype)  # noqa: E731
    return {
        "image": torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(),
        "class_scores": batch([0.02, 0.86, 0.07, 0.04, 0.01], torch.float32),
        "mask": batch(truth["mask"]),
        "boxes": batch(truth["boxes"]), "box_scores": batch(truth["scores"], torch.float32),
        "box_labels": batch(truth["labels"], torch.int64),
        "keypoints": batch(truth["keypoints"]), "heat": batch(truth["heat"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--server-binary", default=str(ROOT / "build" / "server" / "torchbricks-server"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image, truth = scene(360, 480, seed=0)
    examples = values_for(image, truth)
    with tempfile.TemporaryDirectory() as repository:
        export_brick_collection(gallery(), Path(repository) / "gallery" / "1", example_inputs={"INFERENCE": examples},
                                input_specs={"image": EncodedImage()})
        server = subprocess.Popen([args.server_binary, "--model-repository", repository, "--grpc-port", "0",
                                   "--grpc-address", "127.0.0.1", "--allow-metrics", "false"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            port = None
            for line in server.stdout:
                match = re.search(r"serving gRPC on \S+:(\d+)", line)
                if match:
                    port = match.group(1)
                    break
            if port is None:
                raise SystemExit("the server did not start")
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            inputs = {name: tensor.numpy() for name, tensor in examples.items() if name != "image"}
            inputs["image"] = np.array([png.getvalue()], dtype=object)
            with InferenceClient(f"127.0.0.1:{port}") as client:
                result = client.infer("gallery", inputs)
            for name, pngs in sorted(result.outputs.items()):
                path = out / f"{name.replace('_drawing', '')}.png"
                path.write_bytes(pngs[0])
                print(f"wrote {path}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
