"""Writes perf_analyzer's --input-data JSON for a model whose input takes one encoded image per
batch item (the example repository's scene_classifier): one entry per example scene, as a JPEG
and as a PNG, each given as {"b64": ...} of the tensor's wire bytes (a 4-byte little-endian
length, then the file), which is how perf_analyzer reads "b64" for a BYTES input, and
torchbricks-perf too.

    .venv/bin/python bench/encoded_images_input_data.py OUT.json [--input image] [--size 224]
"""
import argparse
import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "clients" / "python" / "client")]
from scene import scene  # noqa: E402
from torchbricks_serve.shared_memory import serialize_array  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--input", default="image")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    entries = []
    for seed, kind in ((1, "JPEG"), (2, "PNG")):
        encoded = io.BytesIO()
        Image.fromarray(scene(args.size, args.size, seed)[0]).save(encoded, format=kind)
        wire = serialize_array(np.array([encoded.getvalue()], dtype=np.object_))
        entries.append({args.input: {"b64": base64.b64encode(wire).decode()}})
    args.out.write_text(json.dumps({"data": entries}))


if __name__ == "__main__":
    main()
