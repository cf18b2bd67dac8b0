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
import struct
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from scene import scene  # noqa: E402


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
        wire = struct.pack("<I", len(encoded.getvalue())) + encoded.getvalue()
        entries.append({args.input: {"b64": base64.b64encode(wire).decode()}})
    args.out.write_text(json.dumps({"data": entries}))


if __name__ == "__main__":
    main()
