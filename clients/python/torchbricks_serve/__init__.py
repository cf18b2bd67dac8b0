"""TorchBricks Serve's Python exporter: turns a torchbricks brick collection into a servable package.

    from torchbricks_serve import export_brick_collection, Stage
    export_brick_collection(collection, "repository/my_model/1",
                            example_inputs={"raw": torch.rand(2, 3, 64, 64)})
"""
from .errors import ExportError
from .exporter import EXPORTER_VERSION, export_brick_collection
from .reference import load_reference, run_reference
from .stages import Stage

__all__ = ["EXPORTER_VERSION", "ExportError", "Stage", "export_brick_collection", "load_reference", "run_reference"]
