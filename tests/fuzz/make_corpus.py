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
    bytes_tensors(jpeg)
    names()
    requests(args.protos, jpeg)
    for folder in sorted((HERE / "corpus").iterdir()):
        print(folder.name, len(list(folder.iterdir())))


if __name__ == "__main__":
    main()
