"""Visualizations and encoded images through a real server: JPEG/PNG files in, one PNG per image
out, decoded images equal to what the collection computes in Python, errors naming the input
and element, the stage rules, metadata, and dynamic batching keeping each caller's images."""
import io
import shutil
import threading

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

import readme_models
from server_process import ServerProcess
from torchbricks_export import run_reference
from torchbricks_serve import build_infer_request

MODEL = "vision_classifier"  # encoded 64x64 input, tiny classifier, classification drawing
COLOURS = [(200, 30, 30), (30, 160, 40), (40, 60, 210)]


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def solid(colour, height=64, width=64) -> np.ndarray:
    return np.tile(np.array(colour, dtype=np.uint8), (height, width, 1))


def files(*elements: bytes) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = list(elements)
    return array


def decode_pngs(output: np.ndarray):
    assert output.dtype == object and output.ndim == 1
    images = []
    for element in output:
        assert element[:8] == b"\x89PNG\r\n\x1a\n"
        images.append(np.asarray(Image.open(io.BytesIO(element)).convert("RGB")))
    return images


def near(pixel, colour, tolerance=8) -> bool:
    return all(abs(int(p) - int(c)) <= tolerance for p, c in zip(pixel, colour))


def test_jpeg_inputs_give_one_png_per_image(client):
    jpegs = [encode(solid(colour, 48 + 16 * i, 80 - 8 * i), "JPEG") for i, colour in enumerate(COLOURS)]
    result = client.infer(MODEL, {"image": files(*jpegs)}, outputs=["visualization"])
    pngs = decode_pngs(result.outputs["visualization"])
    assert len(pngs) == 3
    assert len({png.tobytes() for png in pngs}) == 3
    for png, colour in zip(pngs, COLOURS):
        assert png.shape == (256, 256, 3)  # resized to 64x64, enlarged to 256 for the label
        assert near(png[200, 200], colour)  # far from the label: the image itself
        label = png[:40, :120].reshape(-1, 3)
        assert sum(not near(p, colour, 40) for p in label) > 200  # the label is drawn top-left


def test_png_inputs_decode_exactly(client):
    generator = np.random.default_rng(3)
    images = generator.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    result = client.infer(MODEL, {"image": files(*(encode(image, "PNG") for image in images))},
                          outputs=["head/probabilities", "processed"])
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    expected = run_reference(readme_models.vision_classifier(), "INFERENCE", {"image": as_tensor})
    np.testing.assert_array_equal(result.outputs["processed"], expected["processed"].numpy())
    np.testing.assert_allclose(result.outputs["head/probabilities"], expected["head/probabilities"].numpy(),
                               rtol=1e-4, atol=1e-5)


def test_typed_bytes_contents_work_too(client):
    request = build_infer_request(MODEL, {"image": files(encode(solid(COLOURS[0]), "PNG"))},
                                  outputs=["visualization"], typed=True)
    assert len(request.inputs[0].contents.bytes_contents) == 1
    pngs = decode_pngs(client.infer_request(request).outputs["visualization"])
    assert len(pngs) == 1 and near(pngs[0][200, 200], COLOURS[0], 0)


def test_undecodable_element_is_invalid_argument_naming_input_and_index(client):
    good = encode(solid(COLOURS[0]), "PNG")
    truncated = encode(solid(COLOURS[1]), "JPEG")[:60]
    for bad in (b"GIF89a....", truncated):
        with pytest.raises(grpc.RpcError) as error:
            client.infer(MODEL, {"image": files(good, bad)}, outputs=["visualization"])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "input 'image' element 1" in error.value.details()
    # The server keeps serving.
    assert len(client.infer(MODEL, {"image": files(good)}).outputs["visualization"]) == 1


def test_raw_tensor_for_an_encoded_input_is_refused(client):
    with pytest.raises(grpc.RpcError) as error:
        client.infer(MODEL, {"image": np.zeros((1, 3, 64, 64), dtype=np.uint8)})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'image' must have data type BYTES" in error.value.details()


def test_visualization_is_dead_in_export(client):
    png = encode(solid(COLOURS[2]), "PNG")
    exported = client.infer(MODEL, {"image": files(png)}, stage="EXPORT")
    assert "visualization" not in exported.outputs
    assert "head/probabilities" in exported.outputs
    inference = client.infer(MODEL, {"image": files(png)})
    assert "visualization" in inference.outputs
    with pytest.raises(grpc.RpcError) as error:
        client.infer(MODEL, {"image": files(png)}, outputs=["visualization"], stage="EXPORT")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "visualization" in error.value.details()


def test_only_the_bricks_the_visualization_needs_run(client):
    def executions():
        (version,) = client.brick_statistics(MODEL).versions
        return {brick.name: brick.executions for brick in version.bricks}

    before = executions()
    client.infer(MODEL, {"image": files(encode(solid(COLOURS[0]), "PNG"))}, outputs=["visualization"])
    after = executions()
    ran = {name for name in after if after[name] != before.get(name, 0)}
    assert ran == {"preprocessor", "backbone", "head/classify", "visualizer"}


def test_metadata_says_bytes_in_and_out(client):
    metadata = client.model_metadata(MODEL)
    image = next(t for t in metadata.inputs if t.name == "image")
    assert (image.datatype, list(image.shape)) == ("BYTES", [-1, 1])  # one file per batch item
    visualization = next(t for t in metadata.outputs if t.name == "visualization")
    assert (visualization.datatype, list(visualization.shape)) == ("BYTES", [-1])


def test_files_shaped_b_by_1_as_metadata_shows_run_as_b(client):
    """[B, 1], the shape metadata shows (Triton's dims [1] reshaped to []), runs as [B]; [B, 2] is refused."""
    images = files(encode(solid(COLOURS[0]), "PNG"), encode(solid(COLOURS[1]), "JPEG"))
    flat = client.infer(MODEL, {"image": images}, outputs=["head/logits", "visualization"]).outputs
    shaped = client.infer(MODEL, {"image": images[:, None]}, outputs=["head/logits", "visualization"]).outputs
    assert np.array_equal(flat["head/logits"], shaped["head/logits"]) and flat["head/logits"].shape[0] == 2
    assert list(flat["visualization"]) == list(shaped["visualization"])
    with pytest.raises(grpc.RpcError) as error:
        client.infer(MODEL, {"image": images.reshape(1, 2)}, outputs=["head/logits"])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image" in error.value.details()


def test_gallery_renders_every_renderer_through_the_server(client):
    inputs = {name: tensor.numpy() for name, tensor in readme_models.renderer_gallery_examples(batch=3).items()}
    inputs["image"][1] = 0.8  # three images, three looks
    inputs["image"][2] = 0.1
    outputs = ["draw/classification", "draw/segmentation", "draw/detection", "draw/keypoints", "draw/heatmap",
               "draw/custom"]
    result = client.infer("renderer_gallery", inputs, outputs=outputs)
    for name in outputs:
        pngs = decode_pngs(result.outputs[name])
        assert len(pngs) == 3 and len({png.tobytes() for png in pngs}) == 3, name


def test_batched_requests_each_get_their_own_images(tmp_path_factory, fixture_repository):
    repository = tmp_path_factory.mktemp("visual_batching")
    shutil.copytree(fixture_repository / MODEL / "1", repository / MODEL / "1")
    (repository / MODEL / "config.pbtxt").write_text(
        "max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 200000 }\n", encoding="utf-8")
    answers, failures = {}, []
    with ServerProcess(repository) as server:
        def call(caller: int) -> None:
            # Caller k sends k + 1 images of its own colour.
            colour = (20 + 70 * caller, 200 - 60 * caller, 90)
            try:
                with server.client() as client:
                    result = client.infer(MODEL, {"image": files(*[encode(solid(colour), "PNG")] * (caller + 1))},
                                          outputs=["visualization"], request_id=f"caller-{caller}")
                answers[caller] = (colour, decode_pngs(result.outputs["visualization"]))
            except Exception as error:  # reported below with the caller's number
                failures.append((caller, error))

        threads = [threading.Thread(target=call, args=(caller,)) for caller in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with server.client() as client:
            stats = client.model_statistics(MODEL).model_stats[0]
        assert server.stop() == 0
    assert not failures, failures
    for caller, (colour, pngs) in answers.items():
        assert len(pngs) == caller + 1
        assert all(near(png[200, 200], colour, 0) for png in pngs), caller
    assert stats.inference_count == 3 + 3  # three requests, six images; warm-up is not counted
    assert stats.execution_count < 3  # at least two requests ran together


def test_bytes_for_an_ordinary_input_are_refused(client):
    # unchecked_dummy (conftest) takes raw_images of any dtype and shape, but not BYTES.
    with pytest.raises(grpc.RpcError) as error:
        client.infer("unchecked_dummy", {"raw_images": files(encode(solid(COLOURS[0]), "PNG"))})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only encoded image inputs take" in error.value.details()


def test_decompression_bomb_is_refused_from_its_header(client):
    import struct
    import zlib
    # A valid PNG announcing 30000 x 30000 grey pixels; its compressed rows are tiny.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\0" * (30001 * 64), 9)  # the first 64 rows only
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    with pytest.raises(grpc.RpcError) as error:
        client.infer(MODEL, {"image": files(encode(solid(COLOURS[0]), "PNG"), bomb)}, outputs=["visualization"])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'image' element 1" in error.value.details() and "30000x30000" in error.value.details()
    assert len(client.infer(MODEL, {"image": files(encode(solid(COLOURS[1]), "PNG"))}).outputs["visualization"]) == 1
