"""Every way a request can be wrong gets its own status code and a message naming the culprit
(tensor, parameter, brick or model), and the server keeps serving good requests afterwards."""
import grpc
import numpy as np
import pytest

from torchbricks_serve import build_infer_request

MODEL = "readme_dummy"
UNCHECKED_MODEL = "unchecked_dummy"  # conftest.UNCHECKED_MODEL: raw_images of any dtype and shape
GOOD_SHAPE = (1, 3, 100, 200)


def images(shape=GOOD_SHAPE, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random(shape).astype(dtype)


def expect_error(client, code, *needles, request=None, **infer_kwargs):
    """Sends a request (prepared, or built by client.infer's kwargs) and checks the failure."""
    with pytest.raises(grpc.RpcError) as error:
        if request is not None:
            client.infer_request(request)
        else:
            client.infer(**infer_kwargs)
    assert error.value.code() == code, error.value.details()
    for needle in needles:
        assert needle in error.value.details(), (needle, error.value.details())
    assert_still_serving(client)
    return error.value.details()


def assert_still_serving(client):
    good = images(seed=99)
    result = client.infer(MODEL, {"raw_images": good}, outputs=["processed", "logits"])
    np.testing.assert_array_equal(result.outputs["processed"], good / 2)
    assert result.outputs["logits"].shape == (1, 3)


def test_unknown_model(client):
    expect_error(client, grpc.StatusCode.NOT_FOUND, "no_such_model",
                 model="no_such_model", inputs={"raw_images": images()})


def test_unknown_version(client):
    expect_error(client, grpc.StatusCode.NOT_FOUND, MODEL, "7", model=MODEL, version="7",
                 inputs={"raw_images": images()})


def test_model_not_ready(client):
    expect_error(client, grpc.StatusCode.UNAVAILABLE, "invalid_corrupt_module", "garbled",
                 model="invalid_corrupt_module", inputs={"x": np.ones((2, 4), np.float32)})


def test_missing_input(client):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", model=MODEL, inputs={})


def test_extra_input(client):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "'surplus'", model=MODEL,
                 inputs={"raw_images": images(), "surplus": images()})


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_duplicated_input(client, typed):
    request = build_infer_request(MODEL, {"raw_images": images()}, typed=typed)
    request.inputs.append(request.inputs[0])
    if not typed:
        request.raw_input_contents.append(request.raw_input_contents[0])
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


def test_wrong_datatype(client):
    details = expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", model=MODEL,
                           inputs={"raw_images": images(dtype=np.float64)})
    assert "FP64" in details


def test_unknown_datatype_name(client):
    request = build_infer_request(MODEL, {"raw_images": images()})
    request.inputs[0].datatype = "FP24"
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", "FP24", request=request)


@pytest.mark.parametrize("shape", [(1, 3, 50, 200), (1, 1, 100, 200), (3, 100, 200), (1, 3, 100, 200, 1)])
def test_wrong_shape(client, shape):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", model=MODEL,
                 inputs={"raw_images": images(shape)})


def test_negative_dimension(client):
    request = build_infer_request(MODEL, {"raw_images": images()})
    request.inputs[0].shape[0] = -1
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


@pytest.mark.parametrize("change", [-4, -1, 4])
def test_raw_contents_size_does_not_match_shape(client, change):
    request = build_infer_request(MODEL, {"raw_images": images()})
    data = request.raw_input_contents[0]
    request.raw_input_contents[0] = data[:change] if change < 0 else data + bytes(change)
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


@pytest.mark.parametrize("change", [-1, 1])
def test_typed_contents_count_does_not_match_shape(client, change):
    request = build_infer_request(MODEL, {"raw_images": images()}, typed=True)
    values = request.inputs[0].contents.fp32_contents
    if change < 0:
        del values[-1]
    else:
        values.append(0.5)
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


def test_typed_contents_in_wrong_field(client):
    request = build_infer_request(MODEL, {"raw_images": images()}, typed=True)
    request.inputs[0].contents.int_contents.extend([1, 2])
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


def test_no_contents_at_all(client):
    request = build_infer_request(MODEL, {"raw_images": images()}, typed=True)
    request.inputs[0].ClearField("contents")
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


def test_raw_and_typed_contents_mixed(client):
    request = build_infer_request(MODEL, {"raw_images": images()}, typed=True)
    request.raw_input_contents.append(build_infer_request(MODEL, {"raw_images": images()}).raw_input_contents[0])
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_images", request=request)


def test_raw_contents_count_does_not_match_inputs(client):
    request = build_infer_request(MODEL, {"raw_images": images()})
    request.raw_input_contents.append(b"")
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents", request=request)


def test_unknown_requested_output(client):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "'no_such_output'", model=MODEL,
                 inputs={"raw_images": images()}, outputs=["logits", "no_such_output"])


@pytest.mark.parametrize("stage", ["TRAIN", "BOGUS"])
def test_bad_stage(client, stage):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "stage", stage, model=MODEL,
                 inputs={"raw_images": images()}, stage=stage)


@pytest.mark.parametrize("value", [3, True, 1.5], ids=["int64", "bool", "double"])
def test_stage_parameter_not_a_string(client, value):
    expect_error(client, grpc.StatusCode.INVALID_ARGUMENT, "stage", model=MODEL,
                 inputs={"raw_images": images()}, parameters={"stage": value})


def test_libtorch_failure_inside_a_brick_is_internal(client):
    """unchecked_dummy declares raw_images with no dtype or shape, so a 5-channel image reaches
    the 3-channel convolution of brick 'backbone'."""
    ok = client.infer(UNCHECKED_MODEL, {"raw_images": images((1, 3, 8, 8))}, outputs=["logits"])
    assert ok.outputs["logits"].shape == (1, 3)
    expect_error(client, grpc.StatusCode.INTERNAL, "'backbone'", UNCHECKED_MODEL, model=UNCHECKED_MODEL,
                 inputs={"raw_images": images((1, 5, 8, 8))})
    again = client.infer(UNCHECKED_MODEL, {"raw_images": images((2, 3, 4, 4))}, outputs=["logits"])
    assert again.outputs["logits"].shape == (2, 3)


def test_failure_counts_as_failed_request(client):
    (before,) = client.model_statistics(MODEL).model_stats
    with pytest.raises(grpc.RpcError):
        client.infer(MODEL, {"raw_images": images((1, 3, 10, 10))})
    (after,) = client.model_statistics(MODEL).model_stats
    assert after.inference_stats.fail.count == before.inference_stats.fail.count + 1
    assert after.inference_stats.success.count == before.inference_stats.success.count
    assert after.execution_count == before.execution_count
