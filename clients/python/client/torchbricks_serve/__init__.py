"""TorchBricks Serve's Python client: gRPC (Open Inference Protocol v2 + torchbricks.BrickService)
on grpcio, protobuf and numpy; it never imports torch.

    from torchbricks_serve import InferenceClient
    with InferenceClient("127.0.0.1:8001") as client:
        logits = client.infer("my_model", {"raw": images}).outputs["logits"]

`AsyncInferenceClient` is the same client on grpc.aio; `torchbricks_serve.shared_memory` fills
system shared memory regions. The exporter is the separate package `torchbricks_export`.
"""
from .aio_client import AsyncInferenceClient
from .client import InferenceClient, InferResult, build_infer_request

__all__ = ["AsyncInferenceClient", "InferResult", "InferenceClient", "build_infer_request"]
