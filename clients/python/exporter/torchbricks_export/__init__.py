"""TorchBricks Serve's exporter: writes a servable package (docs/PACKAGE_FORMAT.md) from a
torchbricks BrickCollection or a plain dict. Needs torch (and torchvision for images); the
client that calls a server is the separate, torch-free package `torchbricks_serve`.

    from torchbricks_export import export_brick_collection, Stage
    export_brick_collection(collection, "repository/my_model/1",
                            example_inputs={"raw": torch.rand(2, 3, 64, 64)})

`module_format="aot_inductor"` compiles the module bricks with torch.export + AOTInductor
instead (`max_batch_size`, `keep_torchscript`; compiles cached by `aoti_cache`).
"""
from . import renderers
from .errors import ExportError
from .exporter import EXPORTER_VERSION, export_brick_collection
from .reference import load_reference, run_reference
from .renderers import EncodedImage
from .stages import Stage

__all__ = ["EXPORTER_VERSION", "EncodedImage", "ExportError", "Stage", "export_brick_collection", "load_reference",
           "renderers", "run_reference"]
