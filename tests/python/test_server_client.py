"""The Python client's message codec, without a server: numpy <-> protocol datatypes, raw and
typed contents, BYTES framing, BF16 widening, request parameters; and that it needs no torch."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from torchbricks_serve.client import NUMPY_DTYPES, TYPED_FIELDS, build_infer_request, decode_output, protocol_datatype
from torchbricks_serve.generated import grpc_service_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
DATATYPES = ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"]


def sample(datatype, shape=(2, 3)):
    values = np.arange(np.prod(shape)).reshape(shape) - 2
    if datatype == "BOOL":
        return values % 2 == 0
    if datatype.startswith("UINT"):
        values = values + 2
    return values.astype(NUMPY_DTYPES[datatype])


def as_response(request):
    """Echo a request's inputs as a response (what a server would send back)."""
    response = pb.ModelInferResponse()
    for tensor in request.inputs:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape).contents.CopyFrom(
            tensor.contents)
    response.raw_output_contents.extend(request.raw_input_contents)
    return response


@pytest.mark.parametrize("datatype", DATATYPES)
def test_raw_round_trip(datatype):
    array = sample(datatype)
    assert protocol_datatype(array) == datatype
    request = build_infer_request("m", {"x": array})
    tensor = request.inputs[0]
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("x", datatype, [2, 3])
    assert not tensor.HasField("contents")
    assert request.raw_input_contents[0] == array.astype(array.dtype.newbyteorder("<")).tobytes()
    decoded = decode_output(as_response(request).outputs[0], request.raw_input_contents[0])
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "FP16"])
def test_typed_round_trip(datatype):
    array = sample(datatype)
    request = build_infer_request("m", {"x": array}, typed=True)
    assert not request.raw_input_contents
    assert len(getattr(request.inputs[0].contents, TYPED_FIELDS[datatype])) == array.size
    decoded = decode_output(as_response(request).outputs[0], None)
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)


def test_fp16_and_bf16_are_raw_only():
    with pytest.raises(ValueError, match="FP16"):
        build_infer_request("m", {"x": sample("FP16")}, typed=True)
    bits = np.array([0x3F80, 0xC000], dtype=np.uint16)  # 1.0 and -2.0 in bfloat16
    request = build_infer_request("m", {"x": (bits, "BF16")})
    assert request.inputs[0].datatype == "BF16"
    decoded = decode_output(as_response(request).outputs[0], request.raw_input_contents[0])
    np.testing.assert_array_equal(decoded, np.array([1.0, -2.0], dtype=np.float32))


def test_bytes_are_length_prefixed():
    array = np.array([b"ab", b"", b"xyz"], dtype=np.object_)
    request = build_infer_request("m", {"s": array})
    assert request.inputs[0].datatype == "BYTES"
    assert request.raw_input_contents[0] == b"\x02\x00\x00\x00ab\x00\x00\x00\x00\x03\x00\x00\x00xyz"
    decoded = decode_output(as_response(request).outputs[0], request.raw_input_contents[0])
    assert list(decoded) == [b"ab", b"", b"xyz"]


def test_request_fields_and_parameters():
    request = build_infer_request("m", {"x": sample("FP32")}, outputs=["a", "b"], stage="EXPORT", version="3",
                                  request_id="r1", parameters={"flag": True, "n": 4, "f": 0.5})
    assert (request.model_name, request.model_version, request.id) == ("m", "3", "r1")
    assert [o.name for o in request.outputs] == ["a", "b"]
    assert request.parameters["stage"].string_param == "EXPORT"
    assert request.parameters["flag"].bool_param is True
    assert request.parameters["n"].int64_param == 4
    assert request.parameters["f"].double_param == 0.5
    with pytest.raises(ValueError):
        protocol_datatype(np.zeros(2, dtype=np.complex64))


def test_client_does_not_import_torch():
    code = ("import sys; from torchbricks_serve import InferenceClient; "
            "from torchbricks_serve.client import build_infer_request; assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO / "clients" / "python" / "client"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
