"""KServe's Python SDK (pinned in requirements/kserve.txt) against the real server: its v2 gRPC
client reads health, readiness and metadata and runs inference, and gets what the project's
own client gets on the same input.

kserve needs protobuf 6 and the project pins 4, so the SDK lives in .venv-kserve (scripts/setup.sh)
and tests/python/kserve_client_check.py runs there in a subprocess, on the address of the
`server` fixture (the fixture repository), with the inputs as .npy files; its answers come back
as JSON and .npz files."""
import io
import json
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
KSERVE_PYTHON = REPO / ".venv-kserve" / "bin" / "python"
CHECK = Path(__file__).resolve().parent / "kserve_client_check.py"
KSERVE_VERSION = "0.21.0"  # requirements/kserve.txt


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _images(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 3, 100, 200), dtype=np.float32)


# (model, {input: (array, datatype)}, requested outputs or None, how the SDK encodes the tensors)
REQUESTS = [
    ("readme_dummy", {"raw_images": (_images(1), "FP32")}, None, "raw"),
    ("readme_dummy", {"raw_images": (_images(2), "FP32")}, ["softmaxed"], "contents"),
    ("keyword_inputs", {"x": (np.arange(6, dtype=np.float32).reshape(2, 3), "FP32"),
                        "y": (np.full((2, 3), 0.5, dtype=np.float32), "FP32")}, None, "contents"),
    ("lookup_table", {"index": (np.array([[1], [4]], dtype=np.int64), "INT64")}, None, "raw"),
    ("lookup_table", {"index": (np.array([[0], [2], [3]], dtype=np.int64), "INT64")}, None, "contents"),
    ("vision_classifier", {"image": (np.array([png(5), png(6)], dtype=object), "BYTES")},
     ["head/probabilities", "head/class_prediction", "brightness", "visualization"], "raw"),
    # Refused by the server: FP64 where FP32 is declared.
    ("readme_dummy", {"raw_images": (_images(3).astype(np.float64), "FP64")}, None, "raw"),
]
MODELS = sorted({model for model, *_ in REQUESTS})


@pytest.fixture(scope="module")
def kserve_run(server, tmp_path_factory):
    """Runs kserve_client_check.py once against `server`; returns (result.json, OUT_DIR)."""
    if not KSERVE_PYTHON.is_file():
        pytest.fail(f"{KSERVE_PYTHON} is missing: run scripts/setup.sh")
    directory = tmp_path_factory.mktemp("kserve")
    requests = []
    for index, (model, inputs, outputs, encoding) in enumerate(REQUESTS):
        specs = []
        for name, (array, datatype) in inputs.items():
            file = f"request_{index}_{name}.npy"
            np.save(directory / file, array, allow_pickle=datatype == "BYTES")
            specs.append({"name": name, "datatype": datatype, "file": file})
        requests.append({"model": model, "inputs": specs, "outputs": outputs, "encoding": encoding})
    plan = directory / "plan.json"
    plan.write_text(json.dumps({"models": MODELS, "missing_model": "no_such_model",
                               "unready_model": "invalid_corrupt_module", "requests": requests}))
    out = directory / "out"
    out.mkdir()
    done = subprocess.run([str(KSERVE_PYTHON), str(CHECK), server.address, str(plan), str(out)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "result.json").read_text()), out


def test_sdk_is_the_pinned_kserve(kserve_run):
    result, _ = kserve_run
    assert result["sdk"] == KSERVE_VERSION


def test_health_and_readiness(kserve_run):
    result, _ = kserve_run
    assert result["live"] is True and result["ready"] is True
    assert result["model_ready"] == {model: True for model in MODELS}
    assert result["unready_model_ready"] is False  # a package that fails to load
    # An unknown model is not ready (ModelReady answers ready: false, as Triton's server does).
    assert result["missing_model_ready"] is False


def test_metadata_matches_our_client(kserve_run, client):
    result, _ = kserve_run
    assert result["server_metadata"] == MessageToDict(client.server_metadata(), preserving_proto_field_name=True)
    assert result["server_metadata"]["name"] == "torchbricks-serve"
    for model in MODELS:
        ours = MessageToDict(client.model_metadata(model), preserving_proto_field_name=True)
        assert result["model_metadata"][model] == ours, model
    dummy = result["model_metadata"]["readme_dummy"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in dummy["inputs"]] == [
        ("raw_images", "FP32", ["-1", "3", "100", "200"])]  # int64 shapes are strings in proto JSON


@pytest.mark.parametrize("index", range(len(REQUESTS) - 1))
def test_inference_matches_our_client(kserve_run, client, index):
    result, out = kserve_run
    model, inputs, outputs, _ = REQUESTS[index]
    answer = result["responses"][index]
    assert "error" not in answer, answer
    assert answer["model_name"] == model and answer["id"] == f"kserve-{index}"
    ours = client.infer(model, inputs, outputs=outputs)
    assert [o["name"] for o in answer["outputs"]] == list(ours.outputs)
    assert {o["name"]: o["datatype"] for o in answer["outputs"]} == ours.datatypes
    with np.load(out / f"response_{index}.npz", allow_pickle=True) as theirs:
        assert sorted(theirs.files) == sorted(ours.outputs)
        for name, expected in ours.outputs.items():
            assert theirs[name].dtype == expected.dtype and theirs[name].shape == expected.shape, name
            np.testing.assert_array_equal(theirs[name], expected, err_msg=name)


def test_refused_request_reads_as_our_client_does(kserve_run, client):
    result, _ = kserve_run
    model, inputs, outputs, _ = REQUESTS[-1]
    with pytest.raises(grpc.RpcError) as ours:
        client.infer(model, inputs, outputs=outputs)
    error = result["responses"][-1]["error"]
    assert error["code"] == ours.value.code().name == "INVALID_ARGUMENT"
    assert error["details"] == ours.value.details()
