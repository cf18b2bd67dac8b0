"""System shared memory (Triton's `system_shared_memory` extension): registering POSIX shm
objects as regions, inputs read from and outputs written into them, mixed with raw tensors,
every refusal of the contract (bad keys and names, missing objects, sizes and offsets outside a
region or object, duplicates, the region limit), unregistering while requests use a region,
and the extension being off unless `--allow-client-shm true`. Real server processes on loopback;
every /dev/shm object a test creates is removed by its fixture."""
import itertools
import os
import threading
import time
import uuid
from typing import Dict, List, Tuple

import grpc
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from readme_models import brick
from server_process import ServerProcess
from torchbricks_serve import shared_memory as shm
from torchbricks_serve.client import InferenceClient, build_infer_request
from torchbricks_serve.generated import grpc_service_pb2 as pb

ENABLED = ("--allow-client-shm", "true")
KEY_PREFIX = f"tb-shm-test-{os.getpid()}-"
MAX_REGIONS = 256  # SharedMemoryRegions::kMaxRegions
CALL_TIMEOUT = 20
_SERIAL = itertools.count()
FLOAT = np.float32


class Mixer(nn.Module):
    """Two inputs of different dtypes in, two outputs of different dtypes out."""

    def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
        return a * 2.0 - b.unsqueeze(1).to(a.dtype), b * 3 + 1


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shm_repository(fixture_repository, tmp_path_factory):
    """keyword_inputs (x, y FP32 [B,3] -> d = y - 2x), readme_dummy (raw_images -> logits,
    softmaxed), vision_classifier (image BYTES [B] of PNG/JPEG -> ..., visualization BYTES) and
    `mixer` (a FP32 [B,3], b INT64 [B] -> mixed FP32 [B,3], counts INT64 [B])."""
    import shutil
    from torchbricks_export import export_brick_collection

    repository = tmp_path_factory.mktemp("shm")
    for model in ("keyword_inputs", "readme_dummy", "vision_classifier"):
        shutil.copytree(fixture_repository / model, repository / model)
    export_brick_collection({"mix": brick(Mixer(), ["a", "b"], ["mixed", "counts"], kind="NOT_TRAINABLE")},
                            repository / "mixer" / "1",
                            example_inputs={"a": torch.rand(2, 3), "b": torch.tensor([1, 2])})
    return repository


def _stopped(process: ServerProcess) -> None:
    code = process.stop()
    assert code == 0, f"the server exited with {code}:\n{process.log()[-3000:]}"


@pytest.fixture(scope="module")
def shm_server(shm_repository):
    process = ServerProcess(shm_repository, *ENABLED).start()
    try:
        yield process
    finally:
        _stopped(process)


@pytest.fixture(scope="module", params=[(), ("--allow-client-shm", "false")], ids=["default", "false"])
def plain_server(shm_repository, request):
    process = ServerProcess(shm_repository, *request.param).start()
    try:
        yield process
    finally:
        _stopped(process)


@pytest.fixture
def client(shm_server):
    """A client of the shm-enabled server; every region is unregistered after the test."""
    with shm_server.client(timeout=CALL_TIMEOUT) as connected:
        yield connected
        connected.unregister_system_shared_memory("")
        assert not connected.get_system_shared_memory_status("").regions


@pytest.fixture(scope="module", autouse=True)
def no_leftover_objects():
    yield
    left = sorted(name for name in os.listdir(shm.SHM_DIRECTORY) if name.startswith(KEY_PREFIX))
    assert not left, f"shared memory objects left behind: {left}"


def new_key() -> str:
    return f"/{KEY_PREFIX}{next(_SERIAL)}"


@pytest.fixture
def make_region():
    """make_region(byte_size, name=None) -> a fresh SharedMemoryRegion (key /tb-shm-test-PID-N),
    destroyed (unmapped and unlinked) when the test ends."""
    created: List[shm.SharedMemoryRegion] = []

    def make(byte_size: int, name: str = "") -> shm.SharedMemoryRegion:
        key = new_key()
        handle = shm.create_shared_memory_region(name or key.lstrip("/"), key, byte_size)
        created.append(handle)
        return handle

    yield make
    for handle in created:
        handle.destroy()
        assert not os.path.exists(handle.path), handle.path


# --- helpers -------------------------------------------------------------------------------------
def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(*args, **kwargs)
    return error.value


def assert_code(error: grpc.RpcError, code: grpc.StatusCode) -> None:
    assert error.code() == code, f"expected {code.name}, the server answered {error.code().name}: {error.details()}"


def floats(*shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=FLOAT)


def assert_serving(client: InferenceClient, server: ServerProcess) -> None:
    assert server.process.poll() is None, f"the server died:\n{server.log()[-3000:]}"
    x, y = floats(1, 3, seed=90), floats(1, 3, seed=91)
    result = client.infer("keyword_inputs", {"x": x, "y": y})
    np.testing.assert_allclose(result.outputs["d"], y - 2 * x, rtol=1e-6)


def exit_code_soon(server: ServerProcess, seconds: float = 3):
    """The server's exit code if it exits within `seconds` (-7: SIGBUS), else None."""
    deadline = time.monotonic() + seconds
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.process.poll()


def register(client: InferenceClient, handle: shm.SharedMemoryRegion, byte_size: int = 0, offset: int = 0,
             name: str = "") -> str:
    name = name or handle.name
    client.register_system_shared_memory(name, handle.key, byte_size or handle.byte_size - offset, offset)
    return name


# --- the client module on its own ----------------------------------------------------------------
def test_region_handles_write_read_and_remove_their_objects(make_region):
    region = make_region(256)
    assert os.path.getsize(region.path) == 256 and region.key.startswith("/")
    with pytest.raises(shm.SharedMemoryError, match="exists already"):
        shm.create_shared_memory_region("again", region.key, 16)
    values = np.arange(6, dtype=np.int64).reshape(2, 3)
    words = np.array([b"ab", b"", "caf\u00e9"], dtype=np.object_)
    end = shm.set_shared_memory_region(region, [values, words], offset=8)
    assert end == 8 + 48 + shm.serialized_byte_size(words) == 8 + 48 + 4 * 3 + 2 + 5
    np.testing.assert_array_equal(shm.get_contents_as_numpy(region, "INT64", [2, 3], 8), values)
    assert list(shm.get_contents_as_numpy(region, np.object_, [3], 56)) == [b"ab", b"", "caf\u00e9".encode()]
    with pytest.raises(shm.SharedMemoryError):
        shm.set_shared_memory_region(region, [np.zeros(64, np.float32)], offset=8)
    for key in ("/", "..", "a/b", "../x", ""):
        with pytest.raises(ValueError):
            shm.create_shared_memory_region("bad", key, 16)
    with shm.create_shared_memory_region("scoped", new_key(), 32) as scoped:
        path = scoped.path
        assert os.path.exists(path)
    assert not os.path.exists(path) and scoped.closed
    shm.destroy_shared_memory_region(scoped)  # idempotent


# --- metadata and the switch ---------------------------------------------------------------------
def test_server_metadata_lists_the_extension_only_when_enabled(shm_server, plain_server):
    with shm_server.client() as enabled, plain_server.client() as disabled:
        assert "system_shared_memory" in enabled.server_metadata().extensions
        assert "system_shared_memory" not in disabled.server_metadata().extensions


def test_disabled_server_refuses_every_use_with_failed_precondition(plain_server, make_region):
    region = make_region(1024)
    x, y = floats(2, 3), floats(2, 3, seed=1)
    shm.set_shared_memory_region(region, [x])
    with plain_server.client(timeout=CALL_TIMEOUT) as client:
        for call, args in ((client.register_system_shared_memory, ("r", region.key, 1024)),
                           (client.get_system_shared_memory_status, ("",)),
                           (client.get_system_shared_memory_status, ("r",)),
                           (client.unregister_system_shared_memory, ("",)),
                           (client.unregister_system_shared_memory, ("r",))):
            assert_code(rpc_error(call, *args), grpc.StatusCode.FAILED_PRECONDITION)
        error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_inputs={"x": ("r", x.nbytes)})
        assert_code(error, grpc.StatusCode.FAILED_PRECONDITION)
        error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_outputs={"d": ("r", 24, 512)})
        assert_code(error, grpc.StatusCode.FAILED_PRECONDITION)
        assert_serving(client, plain_server)


# --- registering ---------------------------------------------------------------------------------
def test_status_of_all_one_and_unknown_regions(client, make_region):
    first, second = make_region(4096), make_region(128)
    client.register_system_shared_memory("first", first.key, 1024, 2048)
    client.register_system_shared_memory("second", second.key, 128)
    regions = client.get_system_shared_memory_status("").regions
    assert sorted(regions) == ["first", "second"]
    assert (regions["first"].name, regions["first"].key, regions["first"].offset, regions["first"].byte_size) == \
        ("first", first.key, 2048, 1024)
    assert (regions["second"].name, regions["second"].key, regions["second"].offset,
            regions["second"].byte_size) == ("second", second.key, 0, 128)
    one = client.get_system_shared_memory_status("second").regions
    assert list(one) == ["second"] and one["second"].byte_size == 128
    assert_code(rpc_error(client.get_system_shared_memory_status, "third"), grpc.StatusCode.NOT_FOUND)


def test_unregister_is_idempotent(client, make_region):
    region = make_region(64)
    client.unregister_system_shared_memory("never-registered")
    register(client, region, name="a")
    register(client, region, name="b")
    client.unregister_system_shared_memory("a")
    client.unregister_system_shared_memory("a")
    assert list(client.get_system_shared_memory_status("").regions) == ["b"]
    register(client, region, name="a")  # the name is free again
    client.unregister_system_shared_memory("")
    assert not client.get_system_shared_memory_status("").regions
    client.unregister_system_shared_memory("")


def test_a_name_registered_twice_is_already_exists(client, make_region):
    first, second = make_region(64), make_region(32)
    register(client, first, name="dup")
    assert_code(rpc_error(client.register_system_shared_memory, "dup", second.key, 32),
                grpc.StatusCode.ALREADY_EXISTS)
    status = client.get_system_shared_memory_status("dup").regions["dup"]
    assert (status.key, status.byte_size) == (first.key, 64)


@pytest.mark.parametrize("key", ["/", "..", "/..", ".", "a/b", "/a/b", "../x", "/../x", "", "//x", "a b",
                                 "x" * 256, "/dev/shm/x"])
def test_keys_that_are_not_shm_names_are_invalid_argument(client, key):
    error = rpc_error(client.register_system_shared_memory, "bad-key", key, 16)
    assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    assert_code(rpc_error(client.get_system_shared_memory_status, "bad-key"), grpc.StatusCode.NOT_FOUND)


def test_longest_key_and_name_are_accepted(client):
    key = "/" + KEY_PREFIX + "k" * (255 - len(KEY_PREFIX))
    assert len(key) == 256
    with shm.create_shared_memory_region("long", key, 64) as region:
        name = "n" * 128
        client.register_system_shared_memory(name, key, 64)
        assert client.get_system_shared_memory_status(name).regions[name].key == key
        client.register_system_shared_memory("printable~!@#$%^&*()[]{}", key, 64)
        for bad_name in ("", "n" * 129, "bad\x01name", "tab\tname"):
            error = rpc_error(client.register_system_shared_memory, bad_name, key, 64)
            assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
        client.unregister_system_shared_memory("")
    assert not os.path.exists(region.path)


def test_a_missing_object_is_not_found(client):
    key = f"/{KEY_PREFIX}missing-{uuid.uuid4().hex}"
    assert_code(rpc_error(client.register_system_shared_memory, "missing", key, 16), grpc.StatusCode.NOT_FOUND)
    assert not client.get_system_shared_memory_status("").regions


def test_sizes_and_offsets_outside_the_object_are_invalid_argument(client, make_region):
    region = make_region(64)
    for offset, byte_size in ((64, 1), (60, 8), (0, 65), (0, 0), (8, 0), (1 << 62, 16), (16, 1 << 62),
                              ((1 << 64) - 8, 16)):
        error = rpc_error(client.register_system_shared_memory, "outside", region.key, byte_size, offset)
        assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    assert not client.get_system_shared_memory_status("").regions
    client.register_system_shared_memory("inside", region.key, 32, 32)
    client.register_system_shared_memory("whole", region.key, 64, 0)


def test_regions_are_limited(client, make_region):
    region = make_region(16)
    for index in range(MAX_REGIONS):
        client.register_system_shared_memory(f"r{index}", region.key, 16)
    assert_code(rpc_error(client.register_system_shared_memory, "one-too-many", region.key, 16),
                grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert len(client.get_system_shared_memory_status("").regions) == MAX_REGIONS
    client.unregister_system_shared_memory("r0")
    client.register_system_shared_memory("one-too-many", region.key, 16)


# --- inference -----------------------------------------------------------------------------------
def test_inputs_in_shared_memory(client, make_region):
    x, y = floats(2, 3, seed=1), floats(2, 3, seed=2)
    region = make_region(1024)
    shm.set_shared_memory_region(region, [x])
    shm.set_shared_memory_region(region, [y], offset=256)
    register(client, region, name="inputs")
    result = client.infer("keyword_inputs", {"x": x, "y": y},
                          shm_inputs={"x": ("inputs", x.nbytes), "y": ("inputs", y.nbytes, 256)})
    plain = client.infer("keyword_inputs", {"x": x, "y": y})
    np.testing.assert_array_equal(result.outputs["d"], plain.outputs["d"])
    np.testing.assert_allclose(result.outputs["d"], y - 2 * x, rtol=1e-6)
    # The bytes come from the region, not from the (unsent) array.
    result = client.infer("keyword_inputs", {"x": np.zeros_like(x), "y": np.zeros_like(y)},
                          shm_inputs={"x": ("inputs", x.nbytes), "y": ("inputs", y.nbytes, 256)})
    np.testing.assert_array_equal(result.outputs["d"], plain.outputs["d"])
    # A region registered at an offset of its object: tensor offsets count from the region.
    images = floats(2, 3, 100, 200, seed=3)
    big = make_region(4096 + images.nbytes + 512)
    shm.set_shared_memory_region(big, [images], offset=4096 + 512)
    client.register_system_shared_memory("images", big.key, images.nbytes + 512, 4096)
    result = client.infer("readme_dummy", {"raw_images": images},
                          shm_inputs={"raw_images": ("images", images.nbytes, 512)})
    plain = client.infer("readme_dummy", {"raw_images": images})
    for name in ("logits", "softmaxed"):
        np.testing.assert_array_equal(result.outputs[name], plain.outputs[name])


def test_outputs_in_shared_memory(client, make_region):
    images = floats(2, 3, 100, 200, seed=4)
    region = make_region(1024)
    region.write(b"\xab" * 1024)
    client.register_system_shared_memory("outputs", region.key, 512, 256)  # object bytes 256..767
    request = build_infer_request("readme_dummy", {"raw_images": images},
                                  shm_outputs={"logits": ("outputs", 24, 64), "softmaxed": ("outputs", 100, 128)})
    response = client._call("/inference.GRPCInferenceService/ModelInfer", request, pb.ModelInferResponse)
    plain = client.infer("readme_dummy", {"raw_images": images})
    assert sorted(t.name for t in response.outputs) == ["logits", "softmaxed"]
    assert list(response.raw_output_contents) in ([b"", b""], [])
    offsets = {"logits": 64, "softmaxed": 128}
    for tensor in response.outputs:
        offset = offsets[tensor.name]
        assert (tensor.datatype, list(tensor.shape)) == ("FP32", [2, 3])
        parameters = tensor.parameters
        assert parameters["shared_memory_region"].string_param == "outputs"
        assert parameters["shared_memory_offset"].int64_param == offset
        assert parameters["shared_memory_byte_size"].int64_param == 24  # the bytes written
        written = shm.get_contents_as_numpy(region, "FP32", [2, 3], 256 + offset)
        np.testing.assert_array_equal(written, plain.outputs[tensor.name])
    # Around the outputs, the region is left as it was.
    assert region.read(64, 256) == b"\xab" * 64 and region.read(40, 256 + 64 + 24) == b"\xab" * 40
    assert region.read(100 - 24, 256 + 128 + 24) == b"\xab" * 76
    # Through the client: shm outputs are described, not decoded.
    result = client.infer("readme_dummy", {"raw_images": images}, shm_outputs={"logits": ("outputs", 24, 400)})
    assert list(result.outputs) == [] and result.datatypes == {"logits": "FP32"}
    described = result.shm_outputs["logits"]
    assert (described.region, described.offset, described.byte_size, described.shape) == ("outputs", 400, 24, (2, 3))
    np.testing.assert_array_equal(shm.get_contents_as_numpy(region, "FP32", [2, 3], 256 + 400),
                                  plain.outputs["logits"])


@pytest.mark.parametrize("in_shm", ["a", "b"])
@pytest.mark.parametrize("order", ["ab", "ba"])
def test_mixed_request_equals_the_same_request_without_shared_memory(client, make_region, in_shm, order):
    """One input raw and one in a region, one output raw and one in a region, in both input
    orders: raw_input_contents holds only the raw input, and must be matched to it."""
    a = floats(3, 3, seed=5)
    b = np.array([7, -2, 40], dtype=np.int64)
    inputs = {"a": a, "b": b} if order == "ab" else {"b": b, "a": a}
    region = make_region(512)
    shm.set_shared_memory_region(region, [inputs[in_shm]], offset=40)
    register(client, region, name="mixed")
    out_in_shm = "counts" if in_shm == "a" else "mixed"
    out_raw = "mixed" if out_in_shm == "counts" else "counts"
    out_size = 24 if out_in_shm == "counts" else 36
    request = build_infer_request("mixer", inputs, [out_raw, out_in_shm],
                                  shm_inputs={in_shm: ("mixed", inputs[in_shm].nbytes, 40)},
                                  shm_outputs={out_in_shm: ("mixed", out_size, 200)})
    assert len(request.raw_input_contents) == 1
    response = client._call("/inference.GRPCInferenceService/ModelInfer", request, pb.ModelInferResponse)
    plain = client.infer("mixer", inputs)
    # The response lists outputs in the server's order; raw_output_contents stay aligned with them.
    assert sorted(t.name for t in response.outputs) == sorted([out_raw, out_in_shm])
    raw = dict(zip((t.name for t in response.outputs), response.raw_output_contents))
    assert len(response.raw_output_contents) == 2 and raw[out_in_shm] == b""
    assert len(raw[out_raw]) == plain.outputs[out_raw].nbytes
    result = client.infer_request(request)
    np.testing.assert_array_equal(result.outputs[out_raw], plain.outputs[out_raw])
    expected_dtype = "INT64" if out_in_shm == "counts" else "FP32"
    assert result.shm_outputs[out_in_shm].datatype == expected_dtype
    written = shm.get_contents_as_numpy(region, expected_dtype, plain.outputs[out_in_shm].shape, 200)
    np.testing.assert_array_equal(written, plain.outputs[out_in_shm])
    np.testing.assert_allclose(plain.outputs["mixed"], a * 2 - b[:, None].astype(FLOAT), rtol=1e-6)
    np.testing.assert_array_equal(plain.outputs["counts"], b * 3 + 1)


def test_bytes_tensors_in_shared_memory(client, make_region):
    """BYTES lie in a region as in raw contents: each element after its 4-byte length."""
    import io
    image = pytest.importorskip("PIL.Image")
    encoded = io.BytesIO()
    image.fromarray(np.random.default_rng(14).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(encoded, "PNG")
    images = np.array([encoded.getvalue()], dtype=np.object_)
    size = shm.serialized_byte_size(images)
    region = make_region(1 << 20)
    shm.set_shared_memory_region(region, [images], offset=8)
    register(client, region, name="bytes")
    plain = client.infer("vision_classifier", {"image": images})
    result = client.infer("vision_classifier", {"image": images}, list(plain.outputs),
                          shm_inputs={"image": ("bytes", size, 8)}, shm_outputs={"visualization": ("bytes", 1 << 19, 1 << 19)})
    for name, value in plain.outputs.items():
        if name != "visualization":
            np.testing.assert_array_equal(result.outputs[name], value)
    drawn = result.shm_outputs["visualization"]
    assert drawn.datatype == "BYTES" and drawn.byte_size == shm.serialized_byte_size(plain.outputs["visualization"])
    assert drawn.offset == 1 << 19
    written = shm.get_contents_as_numpy(region, "BYTES", drawn.shape, drawn.offset)
    assert list(written.ravel()) == list(plain.outputs["visualization"].ravel())
    error = rpc_error(client.infer, "vision_classifier", {"image": images},
                      shm_inputs={"image": ("bytes", size - 4, 8)})
    assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)


def test_shared_memory_over_a_stream(client, make_region):
    x, y = floats(2, 3, seed=15), floats(2, 3, seed=16)
    region = make_region(4096)
    shm.set_shared_memory_region(region, [x])
    register(client, region, name="stream")
    requests = [build_infer_request("keyword_inputs", {"x": x, "y": y}, request_id=f"r{index}",
                                    shm_inputs={"x": ("stream", 24)},
                                    shm_outputs={"d": ("stream", 24, 1024 + 64 * index)})
                for index in range(3)]
    requests.append(build_infer_request("keyword_inputs", {"x": x, "y": y}, request_id="bad",
                                        shm_inputs={"x": ("nope", 24)}))
    answers = list(client.stream_infer(iter(requests)))
    assert [answer.id for answer in answers] == ["r0", "r1", "r2", "bad"]
    assert not any(answer.error_message for answer in answers[:3]) and answers[3].error_message
    for index in range(3):
        np.testing.assert_allclose(shm.get_contents_as_numpy(region, "FP32", [2, 3], 1024 + 64 * index),
                                   y - 2 * x, rtol=1e-6)


def test_an_output_that_does_not_fit_is_invalid_argument(client, shm_server, make_region):
    images = floats(2, 3, 100, 200, seed=6)
    region = make_region(64)
    register(client, region, name="small")
    error = rpc_error(client.infer, "readme_dummy", {"raw_images": images},
                      shm_outputs={"logits": ("small", 16)})
    assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    assert "logits" in error.details() and "24" in error.details() and "16" in error.details(), error.details()
    assert_serving(client, shm_server)
    result = client.infer("readme_dummy", {"raw_images": images}, shm_outputs={"logits": ("small", 24, 40)})
    assert result.shm_outputs["logits"].byte_size == 24


def test_tensor_placements_outside_the_region_are_invalid_argument(client, shm_server, make_region):
    x, y = floats(2, 3, seed=7), floats(2, 3, seed=8)
    region = make_region(64)
    register(client, region, name="r")
    bad_inputs = [("r", 24, 48), ("r", 24, 64), ("r", 24, 1 << 62), ("r", 24, -8), ("r", 20), ("r", 28),
                  ("r", -24), ("r", 0)]
    for placement in bad_inputs:
        error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_inputs={"x": placement})
        assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    for placement in [("r", 24, 48), ("r", 24, 64), ("r", 24, 1 << 62), ("r", 24, -8), ("r", 100), ("r", -24)]:
        error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_outputs={"d": placement})
        assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    # Only one of region and byte size.
    for parameter in ("shared_memory_region", "shared_memory_byte_size"):
        for tensor_of in ("input", "output"):
            request = build_infer_request("keyword_inputs", {"x": x, "y": y},
                                          **({"shm_inputs": {"x": ("r", 24)}} if tensor_of == "input"
                                             else {"shm_outputs": {"d": ("r", 24)}}))
            tensor = request.inputs[0] if tensor_of == "input" else request.outputs[0]
            del tensor.parameters[parameter]
            error = rpc_error(client.infer_request, request)
            assert_code(error, grpc.StatusCode.INVALID_ARGUMENT)
    # An unknown region.
    error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_inputs={"x": ("nope", 24)})
    assert_code(error, grpc.StatusCode.NOT_FOUND)
    error = rpc_error(client.infer, "keyword_inputs", {"x": x, "y": y}, shm_outputs={"d": ("nope", 24)})
    assert_code(error, grpc.StatusCode.NOT_FOUND)
    assert_serving(client, shm_server)


def test_unregistering_a_region_while_requests_use_it(client, shm_server, make_region):
    """Workers loop inference on a region while another thread unregisters and re-registers it:
    every call answers OK, NOT_FOUND or INVALID_ARGUMENT, and the server keeps serving."""
    images = floats(2, 3, 100, 200, seed=9)
    x, y = floats(2, 3, seed=10), floats(2, 3, seed=11)
    region = make_region(images.nbytes + 4096)
    shm.set_shared_memory_region(region, [images, x, y])
    x_at, y_at, out_at = images.nbytes, images.nbytes + 24, images.nbytes + 1024
    register(client, region, name="churn")
    expected_d = client.infer("keyword_inputs", {"x": x, "y": y}).outputs["d"]
    deadline = time.monotonic() + 6
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
    codes: Dict[str, List[grpc.StatusCode]] = {"images": [], "small": []}
    unexpected: List[str] = []
    done = threading.Event()

    def images_worker():
        with shm_server.client(timeout=CALL_TIMEOUT) as own:
            for _ in range(2000):
                if time.monotonic() > deadline:
                    break
                try:
                    own.infer("readme_dummy", {"raw_images": images},
                              shm_inputs={"raw_images": ("churn", images.nbytes)},
                              shm_outputs={"logits": ("churn", 24, out_at + 512)})
                    codes["images"].append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes["images"].append(error.code())
                    if error.code() not in allowed:
                        unexpected.append(f"{error.code().name}: {error.details()}")

    def small_worker():
        with shm_server.client(timeout=CALL_TIMEOUT) as own:
            for _ in range(5000):
                if time.monotonic() > deadline:
                    break
                try:
                    result = own.infer("keyword_inputs", {"x": x, "y": y},
                                       shm_inputs={"x": ("churn", 24, x_at), "y": ("churn", 24, y_at)},
                                       shm_outputs={"d": ("churn", 24, out_at)})
                    codes["small"].append(grpc.StatusCode.OK)
                    assert result.shm_outputs["d"].byte_size == 24
                except grpc.RpcError as error:
                    codes["small"].append(error.code())
                    if error.code() not in allowed:
                        unexpected.append(f"{error.code().name}: {error.details()}")

    def churn():
        with shm_server.client(timeout=CALL_TIMEOUT) as own:
            try:
                while not done.is_set() and time.monotonic() < deadline + 5:
                    own.unregister_system_shared_memory("churn")
                    time.sleep(0.001)
                    own.register_system_shared_memory("churn", region.key, region.byte_size)
                    time.sleep(0.002)
            except grpc.RpcError as error:
                unexpected.append(f"churn: {error.code().name}: {error.details()}")

    workers = [threading.Thread(target=images_worker), threading.Thread(target=small_worker)]
    churner = threading.Thread(target=churn)
    for thread in workers + [churner]:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    done.set()
    churner.join(timeout=30)
    assert not any(thread.is_alive() for thread in workers + [churner]), "a load thread did not finish"
    print({worker: {code.name: seen.count(code) for code in set(seen)} for worker, seen in codes.items()})
    assert not unexpected, unexpected[:5]
    for worker, seen in codes.items():
        assert seen and set(seen) <= allowed, (worker, set(seen))
        assert seen.count(grpc.StatusCode.OK) > 0, (worker, {code.name: seen.count(code) for code in set(seen)})
    assert_serving(client, shm_server)
    assert "churn" in client.get_system_shared_memory_status("").regions
    np.testing.assert_array_equal(shm.get_contents_as_numpy(region, "FP32", [2, 3], out_at), expected_d)


def test_an_object_unlinked_or_shrunk_after_registration_does_not_take_the_server_down(shm_repository):
    """The client owns the object: unlinking it leaves the server's mapping (requests still
    work); shrinking it (ftruncate) leaves part of the mapping without memory behind it, which
    must be refused, not answered by SIGBUS. Own server, so a crash here spares the others."""
    x, y = floats(2, 3, seed=12), floats(2, 3, seed=13)
    with ServerProcess(shm_repository, *ENABLED) as server, server.client(timeout=CALL_TIMEOUT) as client, \
            shm.create_shared_memory_region("owned", new_key(), 4096) as region:
        shm.set_shared_memory_region(region, [x])
        register(client, region)
        os.unlink(region.path)
        result = client.infer("keyword_inputs", {"x": x, "y": y}, shm_inputs={"x": ("owned", 24)})
        np.testing.assert_allclose(result.outputs["d"], y - 2 * x, rtol=1e-6)
        client.unregister_system_shared_memory("")

        shrunk = shm.create_shared_memory_region("shrunk", new_key(), 8192)
        with shrunk:
            shm.set_shared_memory_region(shrunk, [x])
            register(client, shrunk)
            os.truncate(shrunk.path, 0)
            for placement in ({"shm_inputs": {"x": ("shrunk", 24, 4096)}},
                              {"shm_outputs": {"d": ("shrunk", 24, 4096)}}):
                try:
                    client.infer("keyword_inputs", {"x": x, "y": y}, **placement)
                except grpc.RpcError as error:
                    assert error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL,
                                                grpc.StatusCode.UNKNOWN), \
                        f"{placement}: {error.code().name}: {error.details()} (server exit code " \
                        f"{exit_code_soon(server)})"
            assert_serving(client, server)
            client.unregister_system_shared_memory("")
        assert server.stop() == 0
