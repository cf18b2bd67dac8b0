"""Drives a server through Triton's own Python client, `tritonclient.grpc` (and its asyncio
twin), the way Triton's examples use it, and writes what came back to a pickle file for
test_tritonclient*.py to compare with our client and the exporter's reference.

    python tests/python/tritonclient_calls.py SPEC.json RESULT.pickle

It runs in a process of its own because tritonclient's generated messages and ours
(torchbricks_serve.generated) both declare `inference.*` in protobuf's default descriptor
pool: whichever is imported second fails with "duplicate symbol". This file therefore
imports only tritonclient and numpy.

SPEC: {"address": "127.0.0.1:PORT", "scenarios": [...], "client": {TLS arguments},
"headers": {...}, plus the scenarios' arguments}. RESULT: {scenario: dict of what it saw};
a scenario that raised stores {"exception": (type name, status, message)}.
"""
import asyncio
import json
import pickle
import queue
import sys
import traceback
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

CLASSIFIER, SCENE, RESNET = "classifier", "scene_classifier", "resnet18_classifier"
CALLBACK_TIMEOUT = 30


def failure(error: Exception) -> dict:
    """What a failed call said: its status ('StatusCode.X' for tritonclient's errors) and message."""
    if isinstance(error, InferenceServerException):
        return {"status": error.status(), "message": error.message()}
    return {"status": type(error).__name__, "message": str(error)}


def outcome(call) -> dict:
    """{"value": call()} or {"error": failure(...)}."""
    try:
        return {"value": call()}
    except InferenceServerException as error:
        return {"error": failure(error)}


def fp32_input(name: str, array: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    return tensor


def bytes_input(name: str, files: list, per_item: int = 0) -> grpcclient.InferInput:
    """Files as a BYTES tensor: [N], or [N / per_item, per_item] when per_item is given."""
    array = np.array(files, dtype=np.object_)
    if per_item:
        array = array.reshape(-1, per_item)
    tensor = grpcclient.InferInput(name, list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def result_outputs(result: grpcclient.InferResult) -> dict:
    """{name: (datatype, shape, numpy array)} of every output of a response."""
    response = result.get_response()
    return {output.name: (output.datatype, list(output.shape), result.as_numpy(output.name))
            for output in response.outputs}


def requested(*names: str) -> list:
    return [grpcclient.InferRequestedOutput(name) for name in names]


# --- scenarios: each takes (client, spec) and returns what it saw ---------------------------------
def rpcs(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """Health, metadata, configuration, repository index and statistics, as JSON and as messages."""
    return {
        "live": client.is_server_live(), "ready": client.is_server_ready(),
        "model_ready": {name: client.is_model_ready(name) for name in (CLASSIFIER, SCENE, RESNET)},
        "unknown_model_ready": outcome(lambda: client.is_model_ready("no_such_model")),
        "server_metadata": client.get_server_metadata(as_json=True),
        "model_metadata": {name: client.get_model_metadata(name, as_json=True) for name in (CLASSIFIER, SCENE)},
        "model_metadata_message": client.get_model_metadata(CLASSIFIER).SerializeToString(),
        "model_config": {name: client.get_model_config(name, as_json=True) for name in (CLASSIFIER, SCENE)},
        "model_config_message": client.get_model_config(SCENE).config.SerializeToString(),
        "unknown_model_config": outcome(lambda: client.get_model_config("no_such_model")),
        "index": client.get_model_repository_index(as_json=True),
        "statistics": client.get_inference_statistics(CLASSIFIER, as_json=True),
        "all_statistics": client.get_inference_statistics(as_json=True),
    }


def repository(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """load_model / unload_model of a model the server did not load at start."""
    seen = {"before": client.is_model_ready(RESNET)}
    client.load_model(RESNET)
    seen["loaded"] = client.is_model_ready(RESNET)
    seen["index_loaded"] = client.get_model_repository_index(as_json=True)
    client.unload_model(RESNET)
    seen["unloaded"] = client.is_model_ready(RESNET)
    seen["index_unloaded"] = client.get_model_repository_index(as_json=True)
    seen["load_unknown"] = outcome(lambda: client.load_model("no_such_model"))
    return seen


def infer(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """FP32 and BYTES (JPEG, PNG) inference, with and without requested outputs."""
    raw = np.load(spec["fp32_input"])
    files = [Path(path).read_bytes() for path in spec["image_files"]]
    seen = {
        "fp32_all": result_outputs(client.infer(CLASSIFIER, [fp32_input("raw_images", raw)])),
        "fp32_requested": result_outputs(client.infer(CLASSIFIER, [fp32_input("raw_images", raw)],
                                                      outputs=requested("softmaxed", "embedding"))),
        "bytes": result_outputs(client.infer(SCENE, [bytes_input("image", files)],
                                             outputs=requested("logits", "visualization/classification"))),
        # Shaped [N, 1] as get_model_config's dims [1] (reshape: []) say, as perf_analyzer sends it.
        "bytes_as_configured": result_outputs(client.infer(SCENE, [bytes_input("image", files, per_item=1)],
                                                           outputs=requested("logits"))),
        "bytes_two_per_item": outcome(lambda: client.infer(SCENE, [bytes_input("image", files, per_item=2)])),
        "bad_input": outcome(lambda: client.infer(CLASSIFIER, [fp32_input("no_such_input", raw)])),
        "bad_image": outcome(lambda: client.infer(SCENE, [bytes_input("image", [b"not an image"])])),
    }
    response = client.infer(CLASSIFIER, [fp32_input("raw_images", raw)], request_id="tb-42", model_version="1")
    seen["id_and_version"] = (response.get_response().id, response.get_response().model_version)
    return seen


def async_infer(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """Four async_infer calls in flight at once, answered through a callback."""
    raw = np.load(spec["fp32_input"])
    answers = queue.Queue()
    for row in range(len(raw)):
        client.async_infer(CLASSIFIER, [fp32_input("raw_images", raw[row:row + 1])],
                           callback=lambda result, error, row=row: answers.put((row, result, error)),
                           outputs=requested("logits"), request_id=f"row-{row}")
    seen = {}
    for _ in range(len(raw)):
        row, result, error = answers.get(timeout=CALLBACK_TIMEOUT)
        seen[row] = failure(error) if error else (result.get_response().id, result.as_numpy("logits"))
    return seen


def stream(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """start_stream / async_stream_infer / stop_stream; the third request names a wrong input, a
    fourth (when the spec has image files) goes to the scene classifier."""
    raw = np.load(spec["fp32_input"])
    answers = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)),
                        headers=spec.get("headers"))
    client.async_stream_infer(CLASSIFIER, [fp32_input("raw_images", raw[:1])], request_id="first",
                              outputs=requested("logits"))
    client.async_stream_infer(CLASSIFIER, [fp32_input("raw_images", raw[1:])], request_id="second",
                              outputs=requested("logits"))
    client.async_stream_infer(CLASSIFIER, [fp32_input("wrong", raw[:1])], request_id="third")
    sent = 3
    if spec.get("image_files"):
        client.async_stream_infer(SCENE, [bytes_input("image", [Path(spec["image_files"][0]).read_bytes()])],
                                  request_id="fourth", outputs=requested("logits"))
        sent += 1
    seen = {"results": {}, "errors": []}
    for _ in range(sent):
        result, error = answers.get(timeout=CALLBACK_TIMEOUT)
        if error is not None:
            seen["errors"].append(failure(error))
        else:
            seen["results"][result.get_response().id] = result.as_numpy("logits")
    client.stop_stream()
    return seen


def shared_memory(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """System shared memory as Triton's simple_grpc_shm_client does it: the input in one region,
    an output in another at an offset, read back with get_contents_as_numpy."""
    raw = np.load(spec["fp32_input"])
    tag = spec["shm_tag"]
    offset, output_bytes = 64, raw.shape[0] * 3 * 4
    regions = {"input": shm.create_shared_memory_region(f"{tag}_in", f"/{tag}_in", raw.nbytes),
               "output": shm.create_shared_memory_region(f"{tag}_out", f"/{tag}_out", offset + output_bytes)}
    seen = {}
    try:
        shm.set_shared_memory_region(regions["input"], [raw])
        client.register_system_shared_memory(f"{tag}_in", f"/{tag}_in", raw.nbytes)
        client.register_system_shared_memory(f"{tag}_out", f"/{tag}_out", offset + output_bytes)
        seen["status"] = client.get_system_shared_memory_status(as_json=True)
        tensor = grpcclient.InferInput("raw_images", list(raw.shape), "FP32")
        tensor.set_shared_memory(f"{tag}_in", raw.nbytes)
        logits = grpcclient.InferRequestedOutput("logits")
        logits.set_shared_memory(f"{tag}_out", output_bytes, offset=offset)
        result = client.infer(CLASSIFIER, [tensor], outputs=[logits, grpcclient.InferRequestedOutput("softmaxed")])
        output = result.get_output("logits")
        parameters = {key: getattr(value, value.WhichOneof("parameter_choice"))
                      for key, value in output.parameters.items()}
        seen["logits_output"] = (output.datatype, list(output.shape), parameters)
        # get_contents_as_numpy returns a view of the mapping: copied before the region is destroyed.
        seen["logits_in_shm"] = shm.get_contents_as_numpy(regions["output"], np.float32, list(output.shape),
                                                          offset=offset).copy()
        seen["softmaxed"] = result.as_numpy("softmaxed")
        too_small = grpcclient.InferRequestedOutput("logits")
        too_small.set_shared_memory(f"{tag}_out", 4)
        seen["too_small"] = outcome(lambda: client.infer(CLASSIFIER, [tensor], outputs=[too_small]))
        client.unregister_system_shared_memory(f"{tag}_in")
        seen["status_after_one"] = client.get_system_shared_memory_status(as_json=True)
        client.unregister_system_shared_memory()
        seen["status_after_all"] = client.get_system_shared_memory_status(as_json=True)
    finally:
        for handle in regions.values():
            shm.destroy_shared_memory_region(handle)
    return seen


def secured(client: grpcclient.InferenceServerClient, spec: dict) -> dict:
    """A few calls over whatever channel the spec's client arguments made (TLS, headers)."""
    raw = np.load(spec["fp32_input"])
    headers = spec.get("headers")
    return {
        "live": outcome(lambda: client.is_server_live(headers=headers)),
        "metadata": outcome(lambda: client.get_model_metadata(CLASSIFIER, headers=headers, as_json=True)),
        "infer": outcome(lambda: client.infer(CLASSIFIER, [fp32_input("raw_images", raw)], headers=headers,
                                              outputs=requested("logits")).as_numpy("logits")),
        "infer_without_headers": outcome(lambda: client.infer(CLASSIFIER, [fp32_input("raw_images", raw)],
                                                             outputs=requested("logits")).as_numpy("logits")),
        "index": outcome(lambda: client.get_model_repository_index(headers=headers, as_json=True)),
    }


def asyncio_client(spec: dict) -> dict:
    """tritonclient.grpc.aio: health, metadata, config, infer and stream_infer."""
    raw = np.load(spec["fp32_input"])

    async def run() -> dict:
        async with aioclient.InferenceServerClient(spec["address"], **spec.get("client", {})) as client:
            seen = {"live": await client.is_server_live(), "ready": await client.is_model_ready(CLASSIFIER),
                    "metadata": await client.get_model_metadata(CLASSIFIER, as_json=True),
                    "config": await client.get_model_config(CLASSIFIER, as_json=True)}
            result = await client.infer(CLASSIFIER, [fp32_input("raw_images", raw)],
                                        outputs=[aioclient.InferRequestedOutput("logits")])
            seen["infer"] = result_outputs(result)

            async def requests():
                for row in range(len(raw)):
                    yield {"model_name": CLASSIFIER, "inputs": [fp32_input("raw_images", raw[row:row + 1])],
                           "outputs": [aioclient.InferRequestedOutput("logits")], "request_id": f"row-{row}"}

            seen["stream"] = {}
            async for result, error in client.stream_infer(requests()):
                seen["stream"][result.get_response().id if result else "error"] = (
                    result.as_numpy("logits") if result else failure(error))
                if len(seen["stream"]) == len(raw):
                    break
            return seen

    return asyncio.run(run())


SCENARIOS = {"rpcs": rpcs, "repository": repository, "infer": infer, "async_infer": async_infer,
             "stream": stream, "shared_memory": shared_memory, "secured": secured}


def main(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    results = {}
    client = grpcclient.InferenceServerClient(spec["address"], **spec.get("client", {}))
    try:
        for name in spec["scenarios"]:
            try:
                results[name] = asyncio_client(spec) if name == "aio" else SCENARIOS[name](client, spec)
            except Exception as error:  # reported to the test, which names the scenario
                results[name] = {"exception": failure(error), "traceback": traceback.format_exc()}
    finally:
        client.close()
    Path(result_path).write_bytes(pickle.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
