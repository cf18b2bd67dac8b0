"""`AsyncInferenceClient`: the InferenceClient of torchbricks_serve.client on `grpc.aio`, for
asyncio programs. Same arguments, same answers, every call a coroutine:

    async with AsyncInferenceClient("127.0.0.1:8001") as client:
        results = await asyncio.gather(*(client.infer("readme_dummy", {"raw_images": x}) for x in batches))
        async for result in client.stream_infer(requests):
            ...

Server errors raise `grpc.aio.AioRpcError` (a `grpc.RpcError`: `.code()`, `.details()`).
One client may serve many concurrent calls; use it from the event loop it was made on.
"""
from typing import Any, AsyncIterator, Iterable, Mapping, Optional, Sequence

import grpc
import grpc.aio

from .channel import ChannelClient
from .client import (_BRICKS, _INFERENCE, STAGE_METADATA_KEY, InferResult, InputValue, ShmPlacement, _shm_message,
                     build_infer_request)
from .generated import brick_service_pb2 as brick_pb
from .generated import grpc_service_pb2 as pb
from .generated.grpc.health.v1 import health_pb2


class AsyncInferenceClient(ChannelClient):
    """Client over one `grpc.aio` channel (plaintext unless a TLS argument is given; arguments as
    for InferenceClient); every call takes `timeout` seconds at most and carries `headers`."""

    _channels = grpc.aio

    async def __aenter__(self) -> "AsyncInferenceClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, path: str, request: Any, response_type: Any, metadata: Sequence = ()) -> Any:
        stub = self._stub(path, request, response_type)
        return await stub(request, timeout=self.timeout, metadata=self._metadata(metadata))

    # --- health and metadata -------------------------------------------------------------
    async def server_live(self) -> bool:
        return (await self._call(_INFERENCE + "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse)).live

    async def server_ready(self) -> bool:
        return (await self._call(_INFERENCE + "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse)).ready

    async def model_ready(self, name: str, version: str = "") -> bool:
        request = pb.ModelReadyRequest(name=name, version=version)
        return (await self._call(_INFERENCE + "ModelReady", request, pb.ModelReadyResponse)).ready

    async def server_metadata(self) -> pb.ServerMetadataResponse:
        return await self._call(_INFERENCE + "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse)

    async def model_metadata(self, name: str, version: str = "", stage: Optional[str] = None
                             ) -> pb.ModelMetadataResponse:
        metadata = [(STAGE_METADATA_KEY, stage)] if stage is not None else []
        request = pb.ModelMetadataRequest(name=name, version=version)
        return await self._call(_INFERENCE + "ModelMetadata", request, pb.ModelMetadataResponse, metadata)

    async def model_config(self, name: str, version: str = "") -> pb.ModelConfig:
        request = pb.ModelConfigRequest(name=name, version=version)
        return (await self._call(_INFERENCE + "ModelConfig", request, pb.ModelConfigResponse)).config

    async def health_check(self, service: str = "") -> str:
        """"SERVING", "NOT_SERVING", ... for `service` ("" = the whole server)."""
        response = await self._call("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service=service),
                                    health_pb2.HealthCheckResponse)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # --- inference -----------------------------------------------------------------------
    async def infer(self, model: str, inputs: Mapping[str, InputValue], outputs: Optional[Sequence[str]] = None,
                    stage: Optional[str] = None, version: str = "", request_id: str = "", typed: bool = False,
                    parameters: Optional[Mapping[str, Any]] = None,
                    shm_inputs: Optional[Mapping[str, ShmPlacement]] = None,
                    shm_outputs: Optional[Mapping[str, ShmPlacement]] = None) -> InferResult:
        """One ModelInfer call (arguments as for `build_infer_request`)."""
        request = build_infer_request(model, inputs, outputs, stage, version, request_id, typed, parameters,
                                      shm_inputs, shm_outputs)
        return await self.infer_request(request)

    async def infer_request(self, request: pb.ModelInferRequest) -> InferResult:
        """Sends a prepared ModelInferRequest."""
        return InferResult.from_response(await self._call(_INFERENCE + "ModelInfer", request, pb.ModelInferResponse))

    async def stream_infer(self, requests: Iterable[pb.ModelInferRequest]) -> AsyncIterator[InferResult]:
        """ModelStreamInfer: one InferResult per answer, in order, with `error_message` set for
        failed requests. `requests` may be an iterable or an async iterable."""
        call = self.channel.stream_stream(_INFERENCE + "ModelStreamInfer",
                                          request_serializer=pb.ModelInferRequest.SerializeToString,
                                          response_deserializer=pb.ModelStreamInferResponse.FromString)
        async for reply in call(requests, timeout=self.timeout, metadata=self.headers or None):
            if reply.error_message:
                yield InferResult(model_name=reply.infer_response.model_name, id=reply.infer_response.id,
                                  error_message=reply.error_message, response=reply.infer_response)
            else:
                yield InferResult.from_response(reply.infer_response)

    # --- system shared memory (servers run with --allow-client-shm true) --------------------
    async def register_system_shared_memory(self, name: str, key: str, byte_size: int, offset: int = 0) -> None:
        request = _shm_message("SystemSharedMemoryRegisterRequest")(name=name, key=key, offset=offset,
                                                                    byte_size=byte_size)
        await self._call(_INFERENCE + "SystemSharedMemoryRegister", request,
                         _shm_message("SystemSharedMemoryRegisterResponse"))

    async def unregister_system_shared_memory(self, name: str = "") -> None:
        request = _shm_message("SystemSharedMemoryUnregisterRequest")(name=name)
        await self._call(_INFERENCE + "SystemSharedMemoryUnregister", request,
                         _shm_message("SystemSharedMemoryUnregisterResponse"))

    async def get_system_shared_memory_status(self, name: str = "") -> Any:
        request = _shm_message("SystemSharedMemoryStatusRequest")(name=name)
        return await self._call(_INFERENCE + "SystemSharedMemoryStatus", request,
                                _shm_message("SystemSharedMemoryStatusResponse"))

    # --- statistics and repository -------------------------------------------------------
    async def model_statistics(self, name: str = "", version: str = "") -> pb.ModelStatisticsResponse:
        request = pb.ModelStatisticsRequest(name=name, version=version)
        return await self._call(_INFERENCE + "ModelStatistics", request, pb.ModelStatisticsResponse)

    async def repository_index(self, ready: bool = False) -> pb.RepositoryIndexResponse:
        request = pb.RepositoryIndexRequest(ready=ready)
        return await self._call(_INFERENCE + "RepositoryIndex", request, pb.RepositoryIndexResponse)

    async def load_model(self, name: str) -> None:
        request = pb.RepositoryModelLoadRequest(model_name=name)
        await self._call(_INFERENCE + "RepositoryModelLoad", request, pb.RepositoryModelLoadResponse)

    async def unload_model(self, name: str) -> None:
        request = pb.RepositoryModelUnloadRequest(model_name=name)
        await self._call(_INFERENCE + "RepositoryModelUnload", request, pb.RepositoryModelUnloadResponse)

    # --- torchbricks.BrickService --------------------------------------------------------
    async def model_graph(self, name: str, version: str = "", stage: str = "") -> brick_pb.ModelGraphResponse:
        request = brick_pb.ModelGraphRequest(model_name=name, model_version=version, stage=stage)
        return await self._call(_BRICKS + "ModelGraph", request, brick_pb.ModelGraphResponse)

    async def brick_statistics(self, name: str, version: str = "") -> brick_pb.BrickStatisticsResponse:
        request = brick_pb.BrickStatisticsRequest(model_name=name, model_version=version)
        return await self._call(_BRICKS + "BrickStatistics", request, brick_pb.BrickStatisticsResponse)
