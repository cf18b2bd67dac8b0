"""Turns one brick's module into TorchScript: `torch.jit.script` first, `torch.jit.trace` as fallback."""
from typing import Any, Optional, Tuple

import torch
from torch import nn

from .collection import BrickSpec
from .errors import ExportError
from .reference import first_line


def require_module(spec: BrickSpec) -> nn.Module:
    """Returns the brick's module; raises ExportError when it is not a torch.nn.Module."""
    module = spec.module
    if isinstance(module, nn.Module):
        return module
    what = getattr(module, "__name__", type(module).__name__)
    raise ExportError(f"brick '{spec.name}': its module is a plain Python callable ({what}), not a "
                      "torch.nn.Module; wrap it in a scriptable nn.Module so it can be exported to TorchScript")


def try_script(spec: BrickSpec) -> Tuple[Optional[torch.jit.ScriptModule], Optional[str]]:
    """Scripts the brick's module (in eval mode); returns (module, None) or (None, first error line)."""
    module = require_module(spec).eval()
    try:
        return torch.jit.script(module), None
    except Exception as error:  # TorchScript raises many types (RuntimeError, NotSupportedError, ...)
        return None, first_line(error)


def check_traceable(spec: BrickSpec, script_error: str) -> None:
    """Raises ExportError when the brick takes "stage" or "__all__", which tracing cannot capture."""
    specials = [name for name in spec.inputs if name in ("stage", "__all__")]
    if specials:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted ({script_error}) and "
                          f"cannot be traced because it takes the special input '{specials[0]}'; "
                          "make the module scriptable")


def trace(spec: BrickSpec, args: Optional[Tuple[Any, ...]], script_error: str) -> torch.jit.ScriptModule:
    """Traces the brick's module with the arguments it received in a reference run.

    Raises ExportError naming the brick when no arguments were captured (no example inputs
    reached it), when it takes the special inputs "stage" or "__all__", or when tracing fails.
    """
    check_traceable(spec, script_error)
    if args is None:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted: {script_error}. "
                          "Pass example_inputs for a stage in which it is alive so it can be traced, "
                          "or make the module scriptable")
    try:
        with torch.no_grad():
            return torch.jit.trace(require_module(spec).eval(), args, strict=False)
    except Exception as error:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted ({script_error}) "
                          f"nor traced: {first_line(error)}") from error


def script_renderer(spec: BrickSpec) -> torch.jit.ScriptModule:
    """Scripts the module that renders one image for a visualization brick; raises ExportError
    naming the brick, with the built-in alternative, when it does not script."""
    try:
        return torch.jit.script(spec.render_callable.eval())
    except Exception as error:
        raise ExportError(
            f"visualization brick '{spec.name}': its renderer module {spec.module_type} cannot be scripted "
            f"({first_line(error)}). Make it scriptable, or pick a built-in renderer instead, e.g. "
            "callable=torchbricks_serve.renderers.ImageClassification(class_names=[...]) (see docs/RENDERERS.md)"
        ) from error


def check_renderer(spec: BrickSpec, module: torch.jit.ScriptModule, stage: str, values: Any) -> None:
    """Runs a scripted renderer on the first image of a stage's example values, unpacked as the
    server does, and raises ExportError naming the brick unless it returns uint8 [H, W, 3]."""
    image = values[spec.inputs[0]]
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[0] == 0:
        got = f"{list(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
        raise ExportError(f"visualization brick '{spec.name}': its first input '{spec.inputs[0]}' must be a "
                          f"non-empty image batch [B, C, H, W] in the stage {stage} examples, got {got}")
    args = []
    for position, name in enumerate(spec.inputs):
        value = stage if name == "stage" else values[name]
        if position == 0:
            value = value[0].permute(1, 2, 0)
        elif isinstance(value, torch.Tensor) and value.dim() > 0:
            value = value[0]
        args.append(value)
    try:
        image = module(*args)
    except Exception as error:
        raise ExportError(f"visualization brick '{spec.name}': its renderer module fails on one image of the "
                          f"stage {stage} examples: {first_line(error)}") from error
    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.dim() == 3
            and image.shape[2] == 3):
        got = f"{image.dtype} {list(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
        raise ExportError(f"visualization brick '{spec.name}': its renderer module returned {got}; "
                          "it must return uint8 [H, W, 3]")
