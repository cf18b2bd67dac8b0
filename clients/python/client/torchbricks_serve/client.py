"""A small gRPC client for TorchBricks Serve (Open Inference Protocol v2 + torchbricks.BrickService).

Needs only grpcio and numpy (no torch):

    with InferenceClient("127.0.0.1:8001") as client:
        result = client.infer("readme_dummy", {"raw_images": images}, outputs=["logits"])
        logits = result.outputs["logits"]

Inputs go in `raw_input_contents` by default, or in typed `contents` with `typed=True`.
With the server's system shared memory extension, inputs and requested outputs may live in
registered regions instead (`shm_inputs`, `shm_outputs`; see torchbricks_serve.shared_memory).
Server errors surface unchanged as `grpc.RpcError` (see `.code()` and `.details()`).
`build_infer_request` builds the request message alone, so callers can alter it.

TLS: `InferenceClient(address, root_certificates=..., private_key=..., certificate_chain=...)`
(PEM bytes, or the path of a PEM file; any of them turns TLS on, `ssl=True` alone uses gRPC's
default roots); `headers` are sent with every call (e.g. the access-control header of
`--grpc-restricted-protocol`). `AsyncInferenceClient` (torchbricks_serve.aio_client) is the
same client on `grpc.aio`.
"""
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy as np

from .channel import ChannelClient
from .generated import brick_service_pb2 as brick_pb
from .generated import grpc_service_pb2 as pb
from .generated.grpc.health.v1 import health_pb2

STAGE_METADATA_KEY = "torchbricks-stage"
_INFERENCE = "/inference.GRPCInferenceService/"
_BRICKS = "/torchbricks.BrickService/"

# protocol datatype -> numpy dtype (little-endian); BF16 travels as its uint16 bit pattern.
NUMPY_DTYPES: Dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
}
# protocol datatype -> field of InferTensorContents used with typed contents.
TYPED_FIELDS: Dict[str, str] = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}

# An input value: an array (datatype from its dtype) or (array, protocol datatype).
InputValue = Union[np.ndarray, Tuple[Any, str]]
# Where a tensor lies in system shared memory: (region name, byte size) or (region name, byte size, offset).
ShmPlacement = Union[Tuple[str, int], Tuple[str, int, int]]

SHM_REGION = "shared_memory_region"
SHM_BYTE_SIZE = "shared_memory_byte_size"
SHM_OFFSET = "shared_memory_offset"


@dataclass(frozen=True)
class SharedMemoryOutput:
    """An output the server wrote into a shared memory region, as its response describes it;
    read it with `shared_memory.get_contents_as_numpy(handle, datatype, shape, offset)`."""

    region: str
    offset: int
    byte_size: int
    datatype: str
    shape: Tuple[int, ...]


def _shm_placement(tensor: str, placement: ShmPlacement) -> Tuple[str, int, int]:
    if not isinstance(placement, tuple) or len(placement) not in (2, 3):
        raise ValueError(f"'{tensor}': a shared memory placement is (region, byte_size[, offset]), "
                         f"not {placement!r}")
    region, byte_size = placement[0], int(placement[1])
    offset = int(placement[2]) if len(placement) == 3 else 0
    return str(region), byte_size, offset


def _set_shm_parameters(parameters: Any, placement: Tuple[str, int, int]) -> None:
    region, byte_size, offset = placement
    parameters[SHM_REGION].string_param = region
    parameters[SHM_BYTE_SIZE].int64_param = byte_size
    if offset:
        parameters[SHM_OFFSET].int64_param = offset


def _shm_message(name: str) -> Any:
    """A system shared memory message class, looked up when used: older generated code lacks them."""
    message = getattr(pb, name, None)
    if message is None:
        raise NotImplementedError(f"the generated protocol messages have no {name}: regenerate them "
                                  "from a proto/grpc_service.proto with the system shared memory RPCs")
    return message


def protocol_datatype(array: np.ndarray) -> str:
    """The protocol datatype of a numpy array ("FP32", ...); object/bytes arrays are BYTES."""
    if array.dtype == np.object_ or array.dtype.kind == "S":
        return "BYTES"
    for name, dtype in NUMPY_DTYPES.items():
        if name != "BF16" and array.dtype.newbyteorder("<") == dtype:
            return name
    raise ValueError(f"numpy dtype {array.dtype} has no protocol datatype")


def _encode_bytes(array: np.ndarray) -> bytes:
    """BYTES elements, each prefixed by its 4-byte little-endian length."""
    parts = []
    for element in array.reshape(-1):
        data = element.encode() if isinstance(element, str) else bytes(element)
        parts.append(struct.pack("<I", len(data)) + data)
    return b"".join(parts)


def _decode_bytes(raw: bytes, shape: Sequence[int]) -> np.ndarray:
    elements, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        elements.append(raw[offset + 4:offset + 4 + length])
        offset += 4 + length
    result = np.empty(len(elements), dtype=np.object_)
    result[:] = elements
    return result.reshape(tuple(shape))


def _split_input(value: InputValue) -> Tuple[np.ndarray, str]:
    if isinstance(value, tuple):
        array, datatype = value
        return np.asarray(array), datatype
    array = np.asarray(value)
    return array, protocol_datatype(array)


def build_infer_request(model: str, inputs: Mapping[str, InputValue], outputs: Optional[Sequence[str]] = None,
                        stage: Optional[str] = None, version: str = "", request_id: str = "",
                        typed: bool = False, parameters: Optional[Mapping[str, Any]] = None,
                        shm_inputs: Optional[Mapping[str, ShmPlacement]] = None,
                        shm_outputs: Optional[Mapping[str, ShmPlacement]] = None) -> pb.ModelInferRequest:
    """A ModelInferRequest for `inputs` ({name: array or (array, datatype)}).

    Raw contents by default; with `typed`, the typed field matching each datatype (FP16 and
    BF16 have none: ValueError). `stage` becomes the string parameter "stage"; `parameters`
    adds request parameters (bool, int, float or str values).

    `shm_inputs` ({input name: (region, byte_size[, offset])}) says which inputs the server
    reads from registered system shared memory regions: such an input still needs its entry in
    `inputs`, whose array gives only its shape and datatype (no bytes are sent; write them into
    the region first). `shm_outputs` (same form) asks the server to write outputs into regions;
    these outputs are requested too, after those of `outputs`.
    """
    shm_inputs = {name: _shm_placement(name, placement) for name, placement in (shm_inputs or {}).items()}
    shm_outputs = {name: _shm_placement(name, placement) for name, placement in (shm_outputs or {}).items()}
    unknown = sorted(set(shm_inputs) - set(inputs))
    if unknown:
        raise ValueError(f"shm_inputs {unknown} are not among the inputs (which give their shape and datatype)")
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, value in dict(parameters or {}, **({"stage": stage} if stage is not None else {})).items():
        _set_parameter(request.parameters[name], value)
    for name, value in inputs.items():
        array, datatype = _split_input(value)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if name in shm_inputs:
            _set_shm_parameters(tensor.parameters, shm_inputs[name])
        elif typed:
            if datatype not in TYPED_FIELDS:
                raise ValueError(f"input '{name}': datatype {datatype} has no typed contents field")
            values = array.reshape(-1)
            if datatype == "BYTES":
                values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
            else:
                values = values.tolist()
            getattr(tensor.contents, TYPED_FIELDS[datatype]).extend(values)
        elif datatype == "BYTES":
            request.raw_input_contents.append(_encode_bytes(array))
        else:
            dtype = NUMPY_DTYPES[datatype]
            request.raw_input_contents.append(np.ascontiguousarray(array, dtype=dtype).tobytes())
    requested = list(outputs or ())
    requested += [name for name in shm_outputs if name not in requested]
    for name in requested:
        tensor = request.outputs.add(name=name)
        if name in shm_outputs:
            _set_shm_parameters(tensor.parameters, shm_outputs[name])
    return request


def _set_parameter(parameter: pb.InferParameter, value: Any) -> None:
    if isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = str(value)


def decode_output(tensor: Any, raw: Optional[bytes]) -> np.ndarray:
    """An output tensor as numpy, from its raw bytes or typed contents; BF16 widens to float32."""
    shape = tuple(tensor.shape)
    datatype = tensor.datatype
    if datatype not in NUMPY_DTYPES and datatype != "BYTES":
        raise ValueError(f"output '{tensor.name}' has unknown datatype '{datatype}'")
    if raw is None:
        if datatype not in TYPED_FIELDS:
            raise ValueError(f"output '{tensor.name}': datatype {datatype} has no typed contents field")
        values = getattr(tensor.contents, TYPED_FIELDS[datatype])
        if datatype == "BYTES":
            result = np.empty(len(values), dtype=np.object_)
            result[:] = list(values)
            return result.reshape(shape)
        return np.array(values, dtype=NUMPY_DTYPES[datatype]).reshape(shape)
    if datatype == "BYTES":
        return _decode_bytes(raw, shape)
    array = np.frombuffer(raw, dtype=NUMPY_DTYPES[datatype]).reshape(shape)
    if datatype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.copy()


@dataclass
class InferResult:
    """A decoded ModelInferResponse; for a failed stream request, `error_message` is set."""

    outputs: Dict[str, np.ndarray] = field(default_factory=dict)
    model_name: str = ""
    model_version: str = ""
    id: str = ""
    datatypes: Dict[str, str] = field(default_factory=dict)
    error_message: str = ""
    response: Any = None
    # Outputs the server wrote into shared memory regions (not in `outputs`).
    shm_outputs: Dict[str, SharedMemoryOutput] = field(default_factory=dict)

    @classmethod
    def from_response(cls, response: pb.ModelInferResponse) -> "InferResult":
        raw = list(response.raw_output_contents)
        outputs, datatypes, in_shm = {}, {}, {}
        for index, tensor in enumerate(response.outputs):
            datatypes[tensor.name] = tensor.datatype
            if SHM_REGION in tensor.parameters:
                parameters = tensor.parameters
                in_shm[tensor.name] = SharedMemoryOutput(
                    parameters[SHM_REGION].string_param,
                    parameters[SHM_OFFSET].int64_param if SHM_OFFSET in parameters else 0,
                    parameters[SHM_BYTE_SIZE].int64_param if SHM_BYTE_SIZE in parameters else 0,
                    tensor.datatype, tuple(tensor.shape))
                continue
            outputs[tensor.name] = decode_output(tensor, raw[index] if raw else None)
        return cls(outputs, response.model_name, response.model_version, response.id, datatypes, "", response,
                   in_shm)


class InferenceClient(ChannelClient):
    """Blocking client over one channel (plaintext unless a TLS argument is given); every call
    takes `timeout` seconds at most and carries `headers`. Arguments: see ChannelClient."""

    _channels = grpc

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, path: str, request: Any, response_type: Any, metadata: Optional[Sequence] = None) -> Any:
        stub = self._stub(path, request, response_type)
        return stub(request, timeout=self.timeout, metadata=self._metadata(metadata))

    # --- health and metadata -------------------------------------------------------------
    def server_live(self) -> bool:
        return self._call(_INFERENCE + "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live

    def server_ready(self) -> bool:
        return self._call(_INFERENCE + "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready

    def model_ready(self, name: str, version: str = "") -> bool:
        request = pb.ModelReadyRequest(name=name, version=version)
        return self._call(_INFERENCE + "ModelReady", request, pb.ModelReadyResponse).ready

    def server_metadata(self) -> pb.ServerMetadataResponse:
        return self._call(_INFERENCE + "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse)

    def model_metadata(self, name: str, version: str = "", stage: Optional[str] = None) -> pb.ModelMetadataResponse:
        metadata = [(STAGE_METADATA_KEY, stage)] if stage is not None else None
        request = pb.ModelMetadataRequest(name=name, version=version)
        return self._call(_INFERENCE + "ModelMetadata", request, pb.ModelMetadataResponse, metadata)

    def model_config(self, name: str, version: str = "") -> pb.ModelConfig:
        """Triton's model configuration (the `model_configuration` extension): max_batch_size,
        inputs and outputs of the INFERENCE stage, dynamic batching, instance groups, ..."""
        request = pb.ModelConfigRequest(name=name, version=version)
        return self._call(_INFERENCE + "ModelConfig", request, pb.ModelConfigResponse).config

    def health_check(self, service: str = "") -> str:
        """"SERVING", "NOT_SERVING", ... for `service` ("" = the whole server)."""
        response = self._call("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service=service),
                              health_pb2.HealthCheckResponse)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # --- inference -----------------------------------------------------------------------
    def infer(self, model: str, inputs: Mapping[str, InputValue], outputs: Optional[Sequence[str]] = None,
              stage: Optional[str] = None, version: str = "", request_id: str = "", typed: bool = False,
              parameters: Optional[Mapping[str, Any]] = None,
              shm_inputs: Optional[Mapping[str, ShmPlacement]] = None,
              shm_outputs: Optional[Mapping[str, ShmPlacement]] = None) -> InferResult:
        """One ModelInfer call (arguments as for `build_infer_request`); outputs written into
        shared memory are described in the result's `shm_outputs`, not decoded."""
        request = build_infer_request(model, inputs, outputs, stage, version, request_id, typed, parameters,
                                      shm_inputs, shm_outputs)
        return self.infer_request(request)

    def infer_request(self, request: pb.ModelInferRequest) -> InferResult:
        """Sends a prepared ModelInferRequest."""
        return InferResult.from_response(self._call(_INFERENCE + "ModelInfer", request, pb.ModelInferResponse))

    def stream_infer(self, requests: Iterable[pb.ModelInferRequest]) -> Iterator[InferResult]:
        """ModelStreamInfer: one InferResult per answer, with `error_message` set for failed requests."""
        call = self.channel.stream_stream(_INFERENCE + "ModelStreamInfer",
                                          request_serializer=pb.ModelInferRequest.SerializeToString,
                                          response_deserializer=pb.ModelStreamInferResponse.FromString)
        for reply in call(iter(requests), timeout=self.timeout, metadata=self.headers or None):
            if reply.error_message:
                yield InferResult(model_name=reply.infer_response.model_name, id=reply.infer_response.id,
                                  error_message=reply.error_message, response=reply.infer_response)
            else:
                yield InferResult.from_response(reply.infer_response)

    # --- system shared memory (servers run with --allow-client-shm true) --------------------
    def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None:
        """Registers `byte_size` bytes at `offset` of shared memory object `key` as region `name`."""
        request = _shm_message("SystemSharedMemoryRegisterRequest")(name=name, key=key, offset=offset,
                                                                    byte_size=byte_size)
        self._call(_INFERENCE + "SystemSharedMemoryRegister", request,
                   _shm_message("SystemSharedMemoryRegisterResponse"))

    def unregister_system_shared_memory(self, name: str = "") -> None:
        """Unregisters region `name` ("" = every region); an unknown name is no error."""
        request = _shm_message("SystemSharedMemoryUnregisterRequest")(name=name)
        self._call(_INFERENCE + "SystemSharedMemoryUnregister", request,
                   _shm_message("SystemSharedMemoryUnregisterResponse"))

    def get_system_shared_memory_status(self, name: str = "") -> Any:
        """The SystemSharedMemoryStatusResponse: `.regions` maps each registered region ("" = all,
        else only `name`) to its name, key, offset and byte_size."""
        request = _shm_message("SystemSharedMemoryStatusRequest")(name=name)
        return self._call(_INFERENCE + "SystemSharedMemoryStatus", request,
                          _shm_message("SystemSharedMemoryStatusResponse"))

    # --- statistics and repository -------------------------------------------------------
    def model_statistics(self, name: str = "", version: str = "") -> pb.ModelStatisticsResponse:
        request = pb.ModelStatisticsRequest(name=name, version=version)
        return self._call(_INFERENCE + "ModelStatistics", request, pb.ModelStatisticsResponse)

    def repository_index(self, ready: bool = False) -> pb.RepositoryIndexResponse:
        request = pb.RepositoryIndexRequest(ready=ready)
        return self._call(_INFERENCE + "RepositoryIndex", request, pb.RepositoryIndexResponse)

    def load_model(self, name: str) -> None:
        request = pb.RepositoryModelLoadRequest(model_name=name)
        self._call(_INFERENCE + "RepositoryModelLoad", request, pb.RepositoryModelLoadResponse)

    def unload_model(self, name: str) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        self._call(_INFERENCE + "RepositoryModelUnload", request, pb.RepositoryModelUnloadResponse)

    # --- torchbricks.BrickService --------------------------------------------------------
    def model_graph(self, name: str, version: str = "", stage: str = "") -> brick_pb.ModelGraphResponse:
        request = brick_pb.ModelGraphRequest(model_name=name, model_version=version, stage=stage)
        return self._call(_BRICKS + "ModelGraph", request, brick_pb.ModelGraphResponse)

    def brick_statistics(self, name: str, version: str = "") -> brick_pb.BrickStatisticsResponse:
        request = brick_pb.BrickStatisticsRequest(model_name=name, model_version=version)
        return self._call(_BRICKS + "BrickStatistics", request, brick_pb.BrickStatisticsResponse)
