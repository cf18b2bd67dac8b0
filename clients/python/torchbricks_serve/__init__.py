"""TorchBricks Serve's Python package: the exporter and a gRPC client.

    from torchbricks_serve import export_brick_collection, Stage
    export_brick_collection(collection, "repository/my_model/1",
                            example_inputs={"raw": torch.rand(2, 3, 64, 64)})

    from torchbricks_serve import InferenceClient
    with InferenceClient("127.0.0.1:8001") as client:
        logits = client.infer("my_model", {"raw": images}).outputs["logits"]

Names are imported on first use, so the client (grpcio + numpy) does not pull in torch and
the exporter does not need the generated protocol messages.
"""
import importlib
from typing import Any

_EXPORTS = {
    "EXPORTER_VERSION": "exporter", "export_brick_collection": "exporter", "ExportError": "errors",
    "Stage": "stages", "load_reference": "reference", "run_reference": "reference",
    "InferenceClient": "client", "InferResult": "client", "build_infer_request": "client",
    "AsyncInferenceClient": "aio_client",
    "EncodedImage": "renderers", "renderers": None,
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'torchbricks_serve' has no attribute '{name}'")
    if _EXPORTS[name] is None:  # a submodule
        value = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
