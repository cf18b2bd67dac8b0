"""Triton's own Python client (`tritonclient[grpc]`, pinned in requirements/python.txt) against a
real server on the example repository: every RPC the server implements, called as Triton's
examples call it, and every answer compared with our client's answer to the same call and, for
the classifier, with the exporter's reference outputs. tritonclient runs in a process of its own
(tritonclient_calls.py: its messages and ours cannot share protobuf's default pool); TLS, mutual
TLS and headers are in test_tritonclient_security.py."""
import os
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from tritonclient_runner import run_tritonclient, tritonclient_missing

pytestmark = pytest.mark.skipif(bool(tritonclient_missing()), reason=tritonclient_missing() or "-")

CLASSIFIER, SCENE, RESNET = "classifier", "scene_classifier", "resnet18_classifier"
SHM_TAG = f"tb_tritonclient_{os.getpid()}"
# Inference first, so that the statistics read afterwards count it.
SCENARIOS = ["infer", "async_infer", "stream", "shared_memory", "rpcs", "repository", "aio"]


@pytest.fixture(scope="module")
def server_repository(example_repository):
    return example_repository


@pytest.fixture(scope="module")
def server_flags():
    return ("--model-control-mode", "explicit", "--load-model", CLASSIFIER, "--load-model", SCENE,
            "--allow-client-shm", "true")


def as_dict(message) -> dict:
    """A message as tritonclient's `as_json=True` gives it."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@pytest.fixture(scope="module")
def inputs(example_repository, tmp_path_factory):
    """The classifier's reference input rows and two more (raw.npy, [4, 3, 100, 200]), and a
    JPEG and a PNG of two example scenes."""
    import importlib.util
    import torch
    from PIL import Image
    from torchbricks_export import load_reference

    folder = tmp_path_factory.mktemp("tritonclient")
    _, reference_inputs, reference_outputs = load_reference(
        example_repository / CLASSIFIER / "1" / "reference" / "INFERENCE.pt")
    extra = torch.rand(2, 3, 100, 200, generator=torch.Generator().manual_seed(3))
    raw = torch.cat([reference_inputs["raw_images"], extra]).numpy()
    np.save(folder / "raw.npy", raw)
    scene_file = Path(__file__).resolve().parents[2] / "examples" / "scene.py"  # the example scenes' painter
    spec = importlib.util.spec_from_file_location("example_scene", scene_file)
    example_scene = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example_scene)
    scene = example_scene.scene
    Image.fromarray(scene(224, 224, 5)[0]).save(folder / "scene.jpg", quality=90)
    Image.fromarray(scene(224, 224, 6)[0]).save(folder / "scene.png")
    return {"raw": raw, "raw_path": folder / "raw.npy", "files": [folder / "scene.jpg", folder / "scene.png"],
            "reference": {name: reference_outputs[name].numpy() for name in ("logits", "softmaxed")}}


@pytest.fixture(scope="module")
def seen(server, inputs, tmp_path_factory):
    """What tritonclient saw in every scenario, run once against `server`."""
    return run_tritonclient(tmp_path_factory.mktemp("calls"), server.address, SCENARIOS,
                            fp32_input=str(inputs["raw_path"]),
                            image_files=[str(path) for path in inputs["files"]], shm_tag=SHM_TAG)


@pytest.fixture(scope="module")
def ours(client, inputs):
    """Our client's answers to the same requests."""
    files = [path.read_bytes() for path in inputs["files"]]
    return {"fp32": client.infer(CLASSIFIER, {"raw_images": inputs["raw"]}),
            "requested": client.infer(CLASSIFIER, {"raw_images": inputs["raw"]}, outputs=["softmaxed", "embedding"]),
            "bytes": client.infer(SCENE, {"image": np.array(files, dtype=np.object_)},
                                  outputs=["logits", "visualization/classification"]),
            "one_scene": client.infer(SCENE, {"image": np.array(files[:1], dtype=np.object_)}, outputs=["logits"])}


def test_health_and_model_readiness(seen):
    rpcs = seen["rpcs"]
    assert rpcs["live"] is True and rpcs["ready"] is True
    assert rpcs["model_ready"] == {CLASSIFIER: True, SCENE: True, RESNET: False}
    assert rpcs["unknown_model_ready"] == {"value": False}  # as Triton: not ready, not an error


def test_metadata_equals_our_clients(seen, client):
    from torchbricks_serve.generated import grpc_service_pb2 as pb
    rpcs = seen["rpcs"]
    assert rpcs["server_metadata"] == as_dict(client.server_metadata())
    assert "system_shared_memory" in rpcs["server_metadata"]["extensions"]
    for name in (CLASSIFIER, SCENE):
        assert rpcs["model_metadata"][name] == as_dict(client.model_metadata(name)), name
    assert pb.ModelMetadataResponse.FromString(rpcs["model_metadata_message"]) == client.model_metadata(CLASSIFIER)
    # One encoded image per batch item: [-1, 1], as Triton shows an input of dims [1] reshaped to [].
    assert rpcs["model_metadata"][SCENE]["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": ["-1", "1"]}]


def test_model_config_as_json_and_as_message(seen, client):
    from torchbricks_serve.generated import grpc_service_pb2 as pb
    rpcs = seen["rpcs"]
    for name in (CLASSIFIER, SCENE):
        assert rpcs["model_config"][name] == {"config": as_dict(client.model_config(name))}, name
    classifier = rpcs["model_config"][CLASSIFIER]["config"]
    assert classifier["max_batch_size"] == 8 and classifier["backend"] == "torchbricks"
    assert classifier["input"] == [{"name": "raw_images", "data_type": "TYPE_FP32", "dims": ["3", "100", "200"]}]
    assert rpcs["model_config"][SCENE]["config"]["input"] == [{"name": "image", "data_type": "TYPE_STRING",
                                                               "dims": ["1"], "reshape": {}}]
    # Parsed by tritonclient's model_config_pb2, written again, read back by ours: nothing lost.
    assert pb.ModelConfig.FromString(rpcs["model_config_message"]) == client.model_config(SCENE)
    assert rpcs["unknown_model_config"]["error"]["status"] == "StatusCode.NOT_FOUND"


def test_repository_index_load_and_unload(seen, client):
    repository = seen["repository"]
    assert (repository["before"], repository["loaded"], repository["unloaded"]) == (False, True, False)
    states = lambda index: {model["name"]: model["state"] for model in index["models"]}  # noqa: E731
    assert states(repository["index_loaded"]) == {CLASSIFIER: "READY", SCENE: "READY", RESNET: "READY"}
    assert states(repository["index_unloaded"])[RESNET] == "UNAVAILABLE"
    assert repository["index_unloaded"] == seen["rpcs"]["index"] == as_dict(client.repository_index())
    assert repository["load_unknown"]["error"]["status"] == "StatusCode.NOT_FOUND"


def test_statistics_count_the_requests_tritonclient_sent(seen):
    (classifier,) = seen["rpcs"]["statistics"]["model_stats"]
    assert (classifier["name"], classifier["version"]) == (CLASSIFIER, "1")
    stats = classifier["inference_stats"]
    # Succeeded: infer 3 requests of 4 rows, async_infer 4 of 1, stream 1 + 3 rows, shared memory 4
    # rows. Failed: a wrong input (infer, stream) and an output too large for its region, which
    # ran (4 rows executed: inference_count counts rows executed, as Triton's does) and was
    # refused when its output was written.
    assert (int(stats["success"]["count"]), int(stats["fail"]["count"])) == (3 + 4 + 2 + 1, 3)
    assert int(classifier["inference_count"]) == 3 * 4 + 4 + 4 + 4 + 4
    assert {model["name"] for model in seen["rpcs"]["all_statistics"]["model_stats"]} == {CLASSIFIER, SCENE}


def test_fp32_inference_equals_our_client_and_the_reference(seen, ours, inputs):
    got = seen["infer"]["fp32_all"]
    assert set(got) == {"logits", "softmaxed"}
    for name in ("logits", "softmaxed"):
        datatype, shape, array = got[name]
        assert (datatype, shape, array.dtype) == ("FP32", [4, 3], np.float32), name
        assert np.array_equal(array, ours["fp32"].outputs[name]), name
        np.testing.assert_allclose(array[:2], inputs["reference"][name], rtol=1e-5, atol=1e-6)
    requested = seen["infer"]["fp32_requested"]
    assert set(requested) == {"softmaxed", "embedding"}  # only what InferRequestedOutput named
    assert requested["embedding"][:2] == ("FP32", [4, 10, 100, 200])
    assert np.array_equal(requested["embedding"][2], ours["requested"].outputs["embedding"])
    assert seen["infer"]["id_and_version"] == ("tb-42", "1")
    bad = seen["infer"]["bad_input"]["error"]
    assert bad["status"] == "StatusCode.INVALID_ARGUMENT" and "no_such_input" in bad["message"]


def test_bytes_inference_with_jpeg_and_png_equals_our_client(seen, ours):
    got = seen["infer"]["bytes"]
    datatype, shape, logits = got["logits"]
    assert (datatype, shape, logits.dtype) == ("FP32", [2, 5], np.float32)
    assert np.array_equal(logits, ours["bytes"].outputs["logits"])
    datatype, shape, drawings = got["visualization/classification"]
    assert (datatype, shape, drawings.dtype) == ("BYTES", [2], np.object_)
    assert [bytes(png) for png in drawings] == list(ours["bytes"].outputs["visualization/classification"])
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in drawings)
    bad = seen["infer"]["bad_image"]["error"]
    assert bad["status"] == "StatusCode.INVALID_ARGUMENT" and "not a JPEG or PNG" in bad["message"]


def test_bytes_shaped_as_the_config_says_equal_one_per_row(seen, ours):
    """[N, 1], what dims [1] with reshape [] asks for, runs as [N]; two files per item do not."""
    datatype, shape, logits = seen["infer"]["bytes_as_configured"]["logits"]
    assert (datatype, shape) == ("FP32", [2, 5])
    assert np.array_equal(logits, ours["bytes"].outputs["logits"])
    bad = seen["infer"]["bytes_two_per_item"]["error"]
    assert bad["status"] == "StatusCode.INVALID_ARGUMENT" and "image" in bad["message"], bad


def test_async_infer_answers_each_callback(seen, ours):
    expected = ours["fp32"].outputs["logits"]
    assert sorted(seen["async_infer"]) == [0, 1, 2, 3]
    for row, (request_id, logits) in seen["async_infer"].items():
        assert request_id == f"row-{row}"
        np.testing.assert_allclose(logits, expected[row:row + 1], rtol=1e-5, atol=1e-6)


def test_stream_answers_every_request_and_reports_the_bad_one(seen, ours):
    stream = seen["stream"]
    assert sorted(stream["results"]) == ["first", "fourth", "second"]
    np.testing.assert_allclose(stream["results"]["first"], ours["fp32"].outputs["logits"][:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stream["results"]["second"], ours["fp32"].outputs["logits"][1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stream["results"]["fourth"], ours["one_scene"].outputs["logits"], rtol=1e-5, atol=1e-6)
    (error,) = stream["errors"]
    assert "unknown input 'wrong'" in error["message"]


def test_system_shared_memory_as_tritonclient_uses_it(seen, ours):
    shm = seen["shared_memory"]
    assert set(shm["status"]["regions"]) == {f"{SHM_TAG}_in", f"{SHM_TAG}_out"}
    assert shm["status"]["regions"][f"{SHM_TAG}_in"] == {"name": f"{SHM_TAG}_in", "key": f"/{SHM_TAG}_in",
                                                         "byte_size": str(4 * 3 * 100 * 200 * 4)}
    assert shm["logits_output"] == ("FP32", [4, 3], {"shared_memory_region": f"{SHM_TAG}_out",
                                                     "shared_memory_offset": 64, "shared_memory_byte_size": 48})
    assert np.array_equal(shm["logits_in_shm"], ours["fp32"].outputs["logits"])
    assert np.array_equal(shm["softmaxed"], ours["fp32"].outputs["softmaxed"])  # beside it, not in shared memory
    too_small = shm["too_small"]["error"]
    assert too_small["status"] == "StatusCode.INVALID_ARGUMENT" and "48 bytes" in too_small["message"]
    assert list(shm["status_after_one"]["regions"]) == [f"{SHM_TAG}_out"]
    assert shm["status_after_all"] == {}
    assert not [name for name in os.listdir("/dev/shm") if name.startswith(SHM_TAG)]


def test_asyncio_client(seen, ours):
    aio = seen["aio"]
    assert aio["live"] is True and aio["ready"] is True
    assert aio["metadata"] == seen["rpcs"]["model_metadata"][CLASSIFIER]
    assert aio["config"] == seen["rpcs"]["model_config"][CLASSIFIER]
    datatype, shape, logits = aio["infer"]["logits"]
    assert (datatype, shape) == ("FP32", [4, 3]) and np.array_equal(logits, ours["fp32"].outputs["logits"])
    assert sorted(aio["stream"]) == [f"row-{row}" for row in range(4)]
    for row in range(4):
        np.testing.assert_allclose(aio["stream"][f"row-{row}"], ours["fp32"].outputs["logits"][row:row + 1],
                                   rtol=1e-5, atol=1e-6)
