"""Writes the seed corpus of the fuzz targets: `make_corpus.py [--fixtures DIR] [--protos DIR]`.

corpus/<target>/ gets a few real inputs per target: the repository's own manifests
(examples/repository and the exported test fixtures, when present) and configs, small PNG
and JPEG files made with Pillow, serialized ModelInferRequests made with the project's
Python messages, BYTES tensors and model names. Each file is named by its content's hash,
so rerunning adds nothing twice. Run with .venv/bin/python (Pillow and protobuf).
"""
import argparse
import hashlib
import io
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def bytes_tensor(elements):
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def manifests(fixtures):
    found = list((REPO / "examples" / "repository").glob("*/*/bricks.pbtxt"))
    if fixtures:
        found += list(Path(fixtures).glob("*/*/bricks.pbtxt"))
    for path in sorted(found):
        write("manifest_fuzzer", path.read_bytes())


def configs():
    for path in sorted((REPO / "examples" / "repository").glob("*/config.pbtxt")):
        write("model_config_fuzzer", path.read_bytes())
    for text in [
        "",
        'name: "fuzz_model"\nmax_batch_size: 0\n',
        "version_policy { all {} }\nmax_batch_size: 32\n",
        "version_policy { specific { versions: [1, 3] } }\n",
        "version_policy { latest { num_versions: 2 } }\n",
        "dynamic_batching { preferred_batch_size: [8, 16] max_queue_delay_microseconds: 2000 "
        "max_queue_size: 4096 default_timeout_microseconds: 100 }\n",
        "instance_group { kind: KIND_CPU count: 2 intra_op_threads: 1 }\n"
        "instance_group { kind: KIND_GPU count: 1 gpus: [0, 1] }\n",
        'parameters { key: "parallel_branches" value: "true" }\n',
    ]:
        write("model_config_fuzzer", text)


def images():
    from PIL import Image
    for size, mode in [((8, 6), "RGB"), ((1, 1), "L"), ((16, 16), "RGBA"), ((3, 5), "P")]:
        image = Image.new(mode, size)
        for fmt in ("PNG", "JPEG"):
            if fmt == "JPEG" and mode in ("RGBA", "P"):
                continue
            out = io.BytesIO()
            image.save(out, fmt)
            write("image_decoding_fuzzer", out.getvalue())
    out = io.BytesIO()
    Image.new("RGB", (9, 7)).save(out, "JPEG", progressive=True)
    write("image_decoding_fuzzer", out.getvalue())
    return out.getvalue()


def jpeg_segments(jpeg):
    """The segments of a JPEG file after SOI, each with its marker; a scan with its data."""
    found, offset = [], 2
    while offset + 2 <= len(jpeg):
        marker = jpeg[offset + 1]
        if marker == 0xD9:
            found.append(jpeg[offset:offset + 2])
            break
        end = offset + 2 + int.from_bytes(jpeg[offset + 2:offset + 4], "big")
        if marker == 0xDA:  # entropy-coded data up to the next marker (not a stuffed 00, not RSTn)
            while end + 1 < len(jpeg) and not (jpeg[end] == 0xFF and jpeg[end + 1] != 0
                                               and not 0xD0 <= jpeg[end + 1] <= 0xD7):
                end += 1
        found.append(jpeg[offset:end])
        offset = end
    return found


def comment(payload):
    return b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload


DECOY_FRAME = b"\xff\xc0\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00"  # 8 x 8, grey


def jpeg_headers():
    """JPEGs whose marker streams fool a reader that takes a length after every marker (a
    decoy 8 x 8 frame header, issue 20), a progressive file of more scans than the decoder
    allows, and ordinary small files, for jpeg_header_fuzzer and image_decoding_fuzzer."""
    from PIL import Image

    def save(image, **options):
        out = io.BytesIO()
        image.save(out, "JPEG", **options)
        return out.getvalue()

    seeds = [save(Image.new("RGB", (13, 7), (10, 200, 30))),
             save(Image.new("L", (16, 9), 77), progressive=True),
             save(Image.new("CMYK", (8, 8), (0, 50, 100, 150)))]
    real = save(Image.new("L", (48, 40), 90))
    segments = jpeg_segments(real)
    # RST0 has no length for libjpeg; a naive reader takes 00 0E as one and lands on the decoy
    # inside a comment that libjpeg skips (after the two extraneous bytes, with a warning).
    seeds.append(real[:2] + b"\xff\xd0\x00\x0e" + comment(bytes(8) + DECOY_FRAME) + real[2:])
    # Silent: two TEMs (no length); a naive reader takes the second (FF 01) as the first's
    # length and lands 65 285 bytes on, inside a comment that follows the real headers.
    first_scan = next(i for i, segment in enumerate(segments) if segment[1] == 0xDA)
    head = real[:2] + b"\xff\x01\xff\x01" + b"".join(segments[:first_scan])
    landing = 2 + 2 + 0xFF01
    seeds.append(head + comment(bytes(landing - len(head) - 4) + DECOY_FRAME) + b"".join(segments[first_scan:]))
    # One scan repeated: 2 + 150 scans, over the decoder's limit of 100.
    progressive = jpeg_segments(save(Image.new("L", (16, 16), 40), progressive=True))
    seeds.append(b"\xff\xd8" + b"".join(progressive[:-1]) + progressive[-2] * 150 + progressive[-1])
    for seed in seeds:
        write("jpeg_header_fuzzer", seed)
    for seed in seeds[3:]:
        write("image_decoding_fuzzer", seed)


def bytes_tensors(jpeg):
    for elements in [[], [b""], [b"a", b"bc", b""], [b"x" * 300], [jpeg]]:
        write("bytes_codec_fuzzer", bytes_tensor(elements))
    write("bytes_codec_fuzzer", b"\x05\x00\x00")  # a cut-off length prefix


def names():
    for name in ["classifier", "resnet18_classifier", "a", "model-v2.onnx", "x" * 255,
                 "..", "../outside", "/abs", "a/b", "a\\b", "a\0b", ".hidden", ""]:
        write("model_name_fuzzer", name)


def requests(protos, jpeg):
    sys.path.insert(0, str(protos))
    import grpc_service_pb2 as pb  # noqa: E402

    def request(*inputs, raw=None, outputs=(), stage=None):
        message = pb.ModelInferRequest(model_name="fuzz_model", id="1")
        for name, datatype, shape, contents in inputs:
            tensor = message.inputs.add(name=name, datatype=datatype, shape=shape)
            if contents is not None:
                tensor.contents.CopyFrom(contents)
        for part in raw or []:
            message.raw_input_contents.append(part)
        for name in outputs:
            message.outputs.add(name=name)
        if stage is not None:
            message.parameters["stage"].string_param = stage
        return message.SerializeToString()

    fp32 = struct.pack("<4f", 1, 2, 3, 4)
    write("request_decoding_fuzzer", request(("x", "FP32", [2, 2], None), raw=[fp32]))
    write("request_decoding_fuzzer", request(
        ("x", "FP32", [1, 2], pb.InferTensorContents(fp32_contents=[1.5, 2])),
        ("i", "INT64", [2], pb.InferTensorContents(int64_contents=[3, 4])),
        outputs=["y", "y", "z"], stage="EXPORT"))
    write("request_decoding_fuzzer", request(
        ("b", "BOOL", [1], pb.InferTensorContents(bool_contents=[True])),
        ("u", "UINT8", [3], pb.InferTensorContents(uint_contents=[1, 2, 255])),
        ("s", "BYTES", [2], pb.InferTensorContents(bytes_contents=[b"ab", b""]))))
    write("request_decoding_fuzzer", request(("image", "BYTES", [1], None),
                                             raw=[bytes_tensor([jpeg])], stage="INFERENCE"))
    write("request_decoding_fuzzer", request(("e", "FP64", [0, 3], None)))
    write("request_decoding_fuzzer", request(("x", "INT8", [2], None), raw=[b"\x01\x02"],
                                             stage="TRAIN"))
    # Large shapes with little data (issue 12: clients send 1M-dimension shapes).
    write("request_decoding_fuzzer", request(("x", "FP32", [100000, 100000], None), raw=[fp32]))
    write("request_decoding_fuzzer", request(("x", "INT64", [1] * 64, None), raw=[b"\0" * 8]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", help="exported test packages (build/fixtures)")
    parser.add_argument("--protos", default=str(REPO / "build" / "python" / "torchbricks_serve" / "generated"),
                        help="folder holding grpc_service_pb2.py")
    args = parser.parse_args()
    manifests(args.fixtures)
    configs()
    jpeg = images()
    jpeg_headers()
    bytes_tensors(jpeg)
    names()
    requests(args.protos, jpeg)
    for folder in sorted((HERE / "corpus").iterdir()):
        print(folder.name, len(list(folder.iterdir())))


if __name__ == "__main__":
    main()
