"""AOT_INDUCTOR bricks: a brick's module captured by `torch.export` with a dynamic batch and
compiled ahead of time by AOTInductor into a `.pt2` package (docs/PACKAGE_FORMAT.md).

A compiled program takes the brick's inputs by position, in the order of `input_names`, each a
tensor whose dimension 0 is the batch (one shared range, 1..max_batch_size) and whose other
dimensions and dtype are fixed by the example run; it returns one tensor per output name.
Everything a brick receives is captured from the example run, as for tracing. Bricks that
cannot be compiled raise ExportError naming the brick, the reason and the way out:
`keep_torchscript=["<brick>"]` leaves that brick in TorchScript.

Needs torch >= 2.6 (torch.export and `torch._inductor.aoti_compile_and_package`); imported
lazily, so the TorchScript exporter still runs on older torch.
"""
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Sequence, Tuple

import torch

from . import aoti_cache
from .collection import BrickSpec
from .errors import ExportError
from .module_export import ExportedModule, positional_adapter, require_module
from .pbtxt import DATA_TYPES, CompiledProgram, InputSpec
from .reference import call_eager, first_line, flatten_value, values_agree

MODULE_FORMATS = ("torchscript", "aot_inductor")
# cpp.dynamic_threads: fused kernels read the intra-op thread count at run time, so the server's
# setting applies (by default AOTInductor bakes in the exporting process's thread count).
# freezing: weights become constants, so convolutions and linear layers get their weights packed
# for oneDNN once, at compile time. Measured on the README classifier's 1x1 convolution at batch 1
# (one thread): 284 µs per run without, 73 µs with; resnet18 at [16, 3, 32, 32] (two threads):
# 8.7 ms without, 5.7 ms with (TorchScript: 7.2 ms).
INDUCTOR_CONFIGS = {"cpp.dynamic_threads": True, "freezing": True}
# LOSS and METRIC bricks stay TorchScript: they run in the training stages only (by default),
# often reduce over the batch or wrap torchmetrics, and the server never needs them fast.
SCORING_KINDS = ("LOSS", "METRIC")
# The stage whose captured arguments define the program, most export-like first (as for tracing).
STAGE_PREFERENCE = ("EXPORT", "INFERENCE", "TEST", "VALIDATION", "TRAIN")


def keep_hint(spec: BrickSpec) -> str:
    """The way out that ends every error about a brick that cannot be compiled."""
    return f'list it in keep_torchscript=["{spec.name}"] to leave it in TorchScript'


def bricks_to_compile(every_brick: Sequence[BrickSpec], alive: Sequence[BrickSpec], module_format: str,
                      keep_torchscript: Sequence[str], max_batch_size: int, have_examples: bool) -> FrozenSet[str]:
    """The names of the alive bricks to compile with AOTInductor (none for "torchscript").

    Visualization renderers, LOSS/METRIC bricks and the bricks named in `keep_torchscript`
    stay TorchScript. Raises ExportError for an unknown module_format, a keep_torchscript name
    that names no brick of the collection (`every_brick`), a max_batch_size below 2, a brick
    to compile that takes "stage" or "__all__" or is no nn.Module, or missing example inputs.
    """
    if module_format not in MODULE_FORMATS:
        raise ExportError(f"module_format must be one of {', '.join(MODULE_FORMATS)}, got {module_format!r}")
    if isinstance(keep_torchscript, str):
        raise ExportError(f"keep_torchscript must be a list of brick names, e.g. [{keep_torchscript!r}], "
                          "not a string")
    known = [spec.name for spec in every_brick]
    unknown = [name for name in keep_torchscript if name not in known]
    if unknown:
        raise ExportError(f"keep_torchscript names no brick of the collection: {', '.join(map(repr, unknown))}; "
                          f"the bricks are {', '.join(known)}")
    if module_format == "torchscript":
        return frozenset()
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 2:
        raise ExportError(f"max_batch_size must be an integer >= 2 (torch.export needs a batch range), "
                          f"got {max_batch_size!r}")
    chosen = [spec for spec in alive if not spec.renderer and spec.kind not in SCORING_KINDS
              and spec.name not in keep_torchscript]
    for spec in chosen:
        _check_compilable(spec)
    if chosen and not have_examples:
        raise ExportError("module_format='aot_inductor' needs example_inputs: every compiled brick is captured "
                          f"from a run of the examples (first: '{chosen[0].name}')")
    return frozenset(spec.name for spec in chosen)


def _check_compilable(spec: BrickSpec) -> None:
    """Raises ExportError when the brick's inputs are not all batched tensors or it has no module."""
    for special in ("stage", "__all__"):
        if special in spec.inputs:
            raise ExportError(f"brick '{spec.name}' ({spec.module_type}) takes the input '{special}', which a "
                              f"compiled program cannot receive (it takes batched tensors only); {keep_hint(spec)}")
    if not spec.outputs:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) has no output names, so a compiled program "
                          f"of it would return nothing; {keep_hint(spec)}")
    require_module(spec)


def export_program(spec: BrickSpec, captured: Dict[str, Tuple[Any, ...]], max_batch_size: int) -> ExportedModule:
    """Captures the brick's module with torch.export from the arguments it received in the
    example runs (`captured`: stage -> arguments in input order), batch dimension dynamic.

    Returns an ExportedModule holding the program (not compiled yet). Raises ExportError naming
    the brick when it was not run, an argument is not a batched tensor, the stages disagree on
    shapes, a batch exceeds max_batch_size, torch.export fails, or the outputs do not flatten
    to one tensor per output name.
    """
    if not captured:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) is compiled from a run of the examples, "
                          "but example_inputs cover no stage it is alive in; give examples for such a stage, "
                          f"or {keep_hint(spec)}")
    stage = next(stage for stage in STAGE_PREFERENCE if stage in captured)
    args = captured[stage]
    inputs = program_inputs(spec, args, stage)
    compiled = CompiledProgram(inputs=inputs, min_batch=1, max_batch=max_batch_size)
    for other_stage, other in captured.items():
        batch = other[0].shape[0] if other and isinstance(other[0], torch.Tensor) and other[0].dim() else 0
        if batch > max_batch_size:
            raise ExportError(f"brick '{spec.name}' receives a batch of {batch} in the stage {other_stage} examples, "
                              f"more than max_batch_size {max_batch_size}; raise max_batch_size or give smaller "
                              "examples")
        problem = compiled.mismatch(other)
        if problem:
            raise ExportError(f"brick '{spec.name}' in stage {other_stage}: {problem} (as captured in stage "
                              f"{stage}); a compiled brick takes one shape apart from the batch: give examples of "
                              f"one shape, or {keep_hint(spec)}")
    program = _torch_export(spec, args, max_batch_size)
    problem = _output_problem(spec, program)
    if problem:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) {problem}; a compiled brick returns one "
                          f"tensor per output name ({len(spec.outputs)}), as a tuple unpacked by position or a "
                          f"single tensor. Return that, or {keep_hint(spec)}")
    min_batch, max_batch = _batch_range(spec, program)
    return ExportedModule(program=program, example_args=args,
                          compiled=CompiledProgram(inputs, min_batch, max_batch, device="cpu"))


def program_inputs(spec: BrickSpec, args: Sequence[Any], stage: str) -> Tuple[InputSpec, ...]:
    """The program's input specs from the arguments of one run: each a CPU tensor with a batch."""
    inputs = []
    batch: Optional[int] = None
    for name, arg in zip(spec.input_names, args):
        where = f"brick '{spec.name}': input '{name}' in stage {stage}"
        if not isinstance(arg, torch.Tensor) or arg.dim() == 0:
            got = "a 0-dim tensor" if isinstance(arg, torch.Tensor) else f"a {type(arg).__name__}"
            raise ExportError(f"{where} is {got}; a compiled brick takes tensors whose dimension 0 is the batch; "
                              f"{keep_hint(spec)}")
        if arg.dtype not in DATA_TYPES or arg.device.type != "cpu":
            raise ExportError(f"{where} is a {arg.dtype} tensor on {arg.device}; compiled bricks take CPU tensors "
                              f"of the types {', '.join(map(str, DATA_TYPES))}; {keep_hint(spec)}")
        if batch is not None and arg.shape[0] != batch:
            raise ExportError(f"{where} has {arg.shape[0]} rows where the brick's first input has {batch}; "
                              f"a compiled brick's inputs share one batch dimension; {keep_hint(spec)}")
        batch = arg.shape[0]
        inputs.append(InputSpec(name, DATA_TYPES[arg.dtype], (-1,) + tuple(arg.shape[1:])))
    return tuple(inputs)


def _torch_export(spec: BrickSpec, args: Sequence[torch.Tensor], max_batch_size: int) -> Any:
    """torch.export of the brick's module, called as the brick calls it, with dimension 0 of
    every argument one shared dynamic batch; raises ExportError with torch's first line."""
    module = positional_adapter(require_module(spec).eval(), spec.input_arguments)
    try:
        return export_dynamic_batch(module, args, max_batch_size)
    except ExportError:
        raise
    except Exception as error:  # torch.export raises many types (user errors, guards, unsupported ops)
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) cannot be captured by torch.export: "
                          f"{first_line(error)}; {keep_hint(spec)}") from error


def export_dynamic_batch(module: Any, args: Sequence[torch.Tensor], max_batch_size: int) -> Any:
    """torch.export of `module` (taking tensors by position) with dimension 0 of every argument
    one shared dynamic batch 1..max_batch_size. torch's own errors propagate unchanged;
    ExportError when torch.export is missing."""
    try:
        from torch.export import Dim, export
    except ImportError as error:
        raise ExportError(f"module_format='aot_inductor' needs torch >= 2.6 with torch.export; this is "
                          f"torch {torch.__version__}") from error
    example = tuple(arg.detach().contiguous() for arg in args)
    if example[0].shape[0] == 1:
        # torch.export specialises a dimension of size 1 to that constant; at batch 2 it
        # stays symbolic (the program is checked at batch 1 after compiling).
        example = tuple(torch.cat([arg, arg]) for arg in example)
    batch = Dim("batch", min=1, max=max_batch_size)
    # The module takes *values: its dynamic shapes are one tuple, one entry per value.
    return export(module, example, dynamic_shapes=(tuple({0: batch} for _ in example),))


def _output_problem(spec: BrickSpec, program: Any) -> str:
    """Why the program's outputs do not map onto the brick's output names ("" when they do)."""
    from torch.export.graph_signature import OutputKind, TensorArgument

    user_outputs = [out for out in program.graph_signature.output_specs if out.kind == OutputKind.USER_OUTPUT]
    if not all(isinstance(out.arg, TensorArgument) for out in user_outputs):
        return "returns a value that is not a tensor"
    out_spec = program.call_spec.out_spec
    count = len(spec.outputs)
    if count == 1 and out_spec.num_leaves == 1 and out_spec.num_children == 0:
        return ""
    if (count > 1 and out_spec.num_children == count and out_spec.num_leaves == count
            and issubclass(out_spec.type, (tuple, list))):
        return ""
    kind = "a single tensor" if out_spec.num_children == 0 else f"a {out_spec.type.__name__}"
    nested = out_spec.num_children not in (0, out_spec.num_leaves)
    return (f"returns {kind}{' (nested)' if nested else ''} of {out_spec.num_leaves} tensor(s) for the output "
            f"names {list(spec.output_names)}")


def _batch_range(spec: BrickSpec, program: Any) -> Tuple[int, int]:
    """(min, max) batch size of the program's inputs, as torch.export recorded it."""
    bounds = batch_range(program)
    if bounds is None:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}): torch.export fixed the batch dimension, so "
                          f"the program would take one batch size only; {keep_hint(spec)}")
    return bounds


def batch_range(program: Any) -> Optional[Tuple[int, int]]:
    """(min, max) batch size of the program's first input, as torch.export recorded it; None
    when torch.export fixed it."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        size = node.meta["val"].shape[0]
        if not isinstance(size, torch.SymInt):
            return None
        bounds = program.range_constraints[size.node.expr]
        return int(bounds.lower), int(bounds.upper)
    return None


def save_package(spec: BrickSpec, exported: ExportedModule, root: Path) -> ExportedModule:
    """Compiles the brick's program (or copies it from the compile cache) to
    `root / spec.compiled_module_file`, and returns it loaded back from there, with the CPU
    instruction sets it was compiled for. Raises ExportError naming the brick when
    AOTInductor fails."""
    from torch._inductor import aoti_load_package

    path = root / spec.compiled_module_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        aoti_cache.compile_package(exported.program, path, INDUCTOR_CONFIGS)
    except Exception as error:  # inductor and the C++ compiler fail in many ways
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}): AOTInductor cannot compile it: "
                          f"{first_line(error)}; {keep_hint(spec)}") from error
    package = aoti_load_package(str(path))
    metadata = package.get_metadata()
    compiled = exported.compiled
    compiled = CompiledProgram(compiled.inputs, compiled.min_batch, compiled.max_batch,
                               device=metadata.get("AOTI_DEVICE_KEY", compiled.device),
                               cpu_isa=metadata.get("AOTI_CPU_ISA", ""))
    return ExportedModule(package=package, example_args=exported.example_args, compiled=compiled)


def check_single_item(spec: BrickSpec, saved: ExportedModule, rtol: float, atol: float) -> None:
    """Runs the compiled program and the eager module on the first row of the brick's example
    arguments and raises ExportError unless they agree within rtol/atol. The program was
    captured at batch >= 2, where torch.export assumes the batch is not 1, so batch 1 is the
    size most worth checking."""
    args = tuple(arg[:1] for arg in saved.example_args)
    with torch.no_grad():
        want = call_eager(spec, require_module(spec), args)
        got = saved.package(*(arg.contiguous() for arg in args))
    want_flat = _flat_outputs(spec, want)
    got_flat = _flat_outputs(spec, got)
    for key, tensor in want_flat.items():
        other = got_flat.get(key)
        if other is None or not values_agree(tensor, other, rtol, atol):
            raise ExportError(f"brick '{spec.name}': the compiled program's output '{key}' at batch 1 differs from "
                              f"the eager module's (rtol {rtol}, atol {atol}); {keep_hint(spec)}")


def _flat_outputs(spec: BrickSpec, result: Any) -> Dict[str, torch.Tensor]:
    values = [result] if len(spec.outputs) == 1 else list(result)
    flat: Dict[str, torch.Tensor] = {}
    for name, value in zip(spec.outputs, values):
        flat.update(flatten_value(name, value))
    return flat
