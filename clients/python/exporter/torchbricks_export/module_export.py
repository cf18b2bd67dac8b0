"""Turns one brick's module into TorchScript: `torch.jit.script` first, `torch.jit.trace` as fallback.
(AOT_INDUCTOR bricks are exported by aoti_export.py; ExportedModule holds either kind.)

Three torchbricks habits shape how a module is exported and then called (ExportedModule):
- a module that defines `__call__` and no `forward` (torchbricks' `Preprocessor`) is scripted
  with its `__call__` as `forward`, or traced through an adapter that calls it;
- a brick whose `input_names` is a dict calls its module with keyword arguments: a scripted
  module keeps that (the package records the parameter names), a traced one is traced
  through an adapter that takes the values by position and passes them on by keyword;
- torchbricks 0.1 hands the input "stage" to a module as its `Stage` enum, which TorchScript
  cannot receive from the server: such a module (or one taking "stage" that does not
  script) is traced once per stage with that stage's value bound, and called without it.
"""
import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .collection import BrickSpec
from .errors import ExportError
from .pbtxt import CompiledProgram
from .reference import first_line


@dataclass
class ExportedModule:
    """A brick's exported module (TorchScript, or an AOTInductor program) and how the server calls it."""

    module: Optional[torch.jit.ScriptModule] = None  # called with every input of the brick
    keywords: Tuple[str, ...] = ()                   # parameter names, when called by keyword
    stage_modules: Dict[str, torch.jit.ScriptModule] = field(default_factory=dict)  # stage bound
    traced: bool = False
    # AOT_INDUCTOR bricks (aoti_export.py): torch.export's program and the arguments it was
    # captured with, until it is compiled; then the package loaded back from disk. `compiled`
    # is what the manifest records about the program (cpu_isa known once compiled).
    program: Any = None        # torch.export.ExportedProgram
    example_args: Tuple[Any, ...] = ()
    package: Any = None        # torch._inductor.aoti_load_package's callable
    compiled: Optional[CompiledProgram] = None

    def __call__(self, spec: BrickSpec, args: Sequence[Any], stage: str) -> Any:
        """Calls the exported module as the server does, with the brick's inputs `args`."""
        if self.package is not None:
            # The compiled code checks nothing about its inputs (a wrong shape may crash the
            # process): check them as the server does, and pass contiguous tensors as it does.
            problem = self.compiled.mismatch(args)
            if problem:
                raise ExportError(f"brick '{spec.name}' in stage {stage}: {problem}")
            return self.package(*(arg.contiguous() for arg in args))
        if self.stage_modules:
            if stage not in self.stage_modules:
                raise ExportError(f"brick '{spec.name}' has no module for stage {stage}")
            return self.stage_modules[stage](*without_stage(spec, args))
        if self.keywords:
            return self.module(**dict(zip(self.keywords, args)))
        return self.module(*args)


def without_stage(spec: BrickSpec, args: Sequence[Any]) -> Tuple[Any, ...]:
    """The brick's arguments without the one for its "stage" input (bound in a per-stage module)."""
    position = spec.inputs.index("stage")
    return tuple(value for i, value in enumerate(args) if i != position)


def require_module(spec: BrickSpec) -> nn.Module:
    """Returns the brick's module; raises ExportError when it is not a torch.nn.Module."""
    module = spec.module
    if isinstance(module, nn.Module):
        return module
    what = getattr(module, "__name__", type(module).__name__)
    raise ExportError(f"brick '{spec.name}': its module is a plain Python callable ({what}), not a "
                      "torch.nn.Module; wrap it in a scriptable nn.Module so it can be exported to TorchScript")


def defines_call_only(module: nn.Module) -> bool:
    """True for a module whose class overrides `__call__` and defines no `forward`."""
    cls = type(module)
    return cls.__call__ is not nn.Module.__call__ and getattr(cls, "forward", None) is getattr(nn.Module, "forward")


def _forward_view(module: nn.Module) -> nn.Module:
    """`module` itself, or for a `__call__`-only module a shallow copy whose class has that
    `__call__` as its `forward` (so TorchScript compiles it as the entry point)."""
    if not defines_call_only(module):
        return module
    cls = type(module)
    view_class = type(cls.__name__, (cls,), {"forward": cls.__call__, "__call__": nn.Module.__call__,
                                             "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    view = copy.copy(module)
    view.__class__ = view_class
    return view


def try_script(spec: BrickSpec) -> Tuple[Optional[ExportedModule], Optional[str]]:
    """Scripts the brick's module (in eval mode); returns (exported, None) or (None, first error line).

    Raises ExportError naming the brick when it calls its module by keyword with a name that
    the module's forward does not take.
    """
    module = require_module(spec).eval()
    try:
        scripted = torch.jit.script(_forward_view(module))
        parameters = [argument.name for argument in scripted.forward.schema.arguments[1:]]
    except Exception as error:  # TorchScript raises many types (RuntimeError, NotSupportedError, ...)
        return None, first_line(error)
    unknown = [name for name in spec.input_arguments if name not in parameters]
    if unknown:
        raise ExportError(f"brick '{spec.name}' passes the keyword argument(s) {', '.join(unknown)} but "
                          f"{spec.module_type}.forward takes ({', '.join(parameters)})")
    return ExportedModule(module=scripted, keywords=spec.input_arguments), None


def needs_stage_binding(spec: BrickSpec, scripted: Optional[ExportedModule]) -> bool:
    """True when the brick must be traced per stage: it takes "stage" and either gets the
    library's Stage enum (torchbricks 0.1) or its module does not script."""
    return spec.takes_stage and (spec.stage_enum is not None or scripted is None)


def check_traceable(spec: BrickSpec, script_error: str) -> None:
    """Raises ExportError when the brick takes "__all__", which tracing cannot capture."""
    if "__all__" in spec.inputs:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted ({script_error}) and "
                          "cannot be traced because it takes the special input '__all__'; "
                          "make the module scriptable")


class _TraceAdapter(nn.Module):
    """Calls a module the way its brick does, from positional values: by keyword when the
    brick names arguments, through `__call__` (so `__call__`-only modules work), and with the
    stage's value re-inserted where the brick takes "stage"."""

    def __init__(self, inner: nn.Module, keywords: Tuple[str, ...], stage_position: int, stage_value: Any) -> None:
        super().__init__()
        self.inner = inner
        self.keywords = keywords
        self.stage_position = stage_position
        self.stage_value = stage_value

    def forward(self, *values: Any) -> Any:
        values = list(values)
        if self.stage_position >= 0:
            values.insert(self.stage_position, self.stage_value)
        if self.keywords:
            return self.inner(**dict(zip(self.keywords, values)))
        return self.inner(*values)


def positional_adapter(module: nn.Module, keywords: Tuple[str, ...]) -> nn.Module:
    """A module that takes the brick's inputs by position and calls `module` as the brick does
    (by keyword when `keywords` names the parameters; through `__call__`)."""
    return _TraceAdapter(module, keywords, -1, None)


def _trace_one(spec: BrickSpec, args: Tuple[Any, ...], stage: Optional[str], script_error: str) -> torch.jit.ScriptModule:
    module = require_module(spec).eval()
    position = spec.inputs.index("stage") if stage is not None else -1
    if position >= 0:
        args = without_stage(spec, args)
    plain = position < 0 and not spec.input_arguments and not defines_call_only(module)
    target = module if plain else _TraceAdapter(module, spec.input_arguments, position,
                                                spec.stage_value(stage) if stage is not None else None).eval()
    try:
        with torch.no_grad():
            return torch.jit.trace(target, args, strict=False, check_trace=False)
    except Exception as error:
        where = f" with the stage {stage} bound" if stage is not None else ""
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted ({script_error}) "
                          f"nor traced{where}: {first_line(error)}") from error


def trace(spec: BrickSpec, captured: Dict[str, Tuple[Any, ...]], script_error: str,
          per_stage: bool) -> ExportedModule:
    """Traces the brick's module with the arguments it received in the reference runs
    (`captured`: stage -> arguments, in the order of the brick's inputs).

    With `per_stage`, one module per stage in `captured` with that stage's value of "stage"
    bound; else one module from the most export-like stage. Raises ExportError naming the
    brick when no arguments were captured, it takes "__all__", or tracing fails.
    """
    check_traceable(spec, script_error)
    if not captured:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be scripted: {script_error}. "
                          "Pass example_inputs for a stage in which it is alive so it can be traced, "
                          "or make the module scriptable")
    if per_stage:
        return ExportedModule(stage_modules={stage: _trace_one(spec, args, stage, script_error)
                                             for stage, args in captured.items()}, traced=True)
    stage = next(stage for stage in ("EXPORT", "INFERENCE", "TEST", "VALIDATION", "TRAIN") if stage in captured)
    return ExportedModule(module=_trace_one(spec, captured[stage], None, script_error), traced=True)


def script_renderer(spec: BrickSpec) -> torch.jit.ScriptModule:
    """Scripts the module that renders one image for a visualization brick; raises ExportError
    naming the brick, with the built-in alternative, when it does not script."""
    try:
        scripted = torch.jit.script(spec.render_callable.eval())
    except Exception as error:
        raise ExportError(
            f"visualization brick '{spec.name}': its renderer module {spec.module_type} cannot be scripted "
            f"({first_line(error)}). Make it scriptable, or pick a built-in renderer instead, e.g. "
            "callable=torchbricks_export.renderers.ImageClassification(class_names=[...]) (see docs/RENDERERS.md)"
        ) from error
    # The server draws by position; keyword input names must name forward()'s parameters in order.
    parameters = tuple(argument.name for argument in scripted.forward.schema.arguments[1:])
    if spec.input_arguments and parameters[:len(spec.input_arguments)] != spec.input_arguments:
        raise ExportError(f"visualization brick '{spec.name}': its input_names name the arguments "
                          f"{list(spec.input_arguments)}, but the renderer's forward takes {list(parameters)}; "
                          "list them in that order")
    return scripted


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
