"""Fused stages: the compiled bricks alive in one stage captured by `torch.export` as ONE program
(their composed forward) and compiled by AOTInductor into one `.pt2`, so that it fuses across
bricks (docs/PACKAGE_FORMAT.md, "Fused stages").

The program takes, by position, every value its bricks read from outside the set (in order of
first use) and returns every value they produce (in production order), each with dimension 0
the batch, one shared dynamic range 1..max_batch_size. The bricks' own `.pt2` packages stay in
the package: other stages and requests for a subset of the outputs run them.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Sequence, Tuple

import torch
from torch import nn

from . import aoti_cache, aoti_export
from .collection import BrickSpec
from .errors import ExportError
from .graph import alive_bricks
from .module_export import positional_adapter, require_module
from .pbtxt import CompiledProgram
from .reference import first_line, values_agree
from .stages import STAGE_NAMES


@dataclass(frozen=True)
class FusedStage:
    """One fused program (message FusedStage of bricks.pbtxt)."""

    stage: str
    bricks: Tuple[str, ...]        # the fused bricks, in the order the program runs them
    input_names: Tuple[str, ...]   # the program's inputs, by position
    output_names: Tuple[str, ...]  # the program's outputs, by position
    compiled: CompiledProgram

    @property
    def module_file(self) -> str:
        # Clashes with a brick's file only for a brick named "INFERENCE" (or another stage) in a
        # collection named "__fused__"; the exporter writes neither name itself.
        return f"modules/__fused__.{self.stage}.pt2"


def fused_members(specs: Sequence[BrickSpec], compiled: FrozenSet[str], fused_stages: Sequence[str],
                  module_format: str) -> Dict[str, List[BrickSpec]]:
    """stage -> the bricks to fuse in it (the compiled bricks alive in it, collection order).

    Raises ExportError when fused_stages is given without module_format="aot_inductor", names an
    unknown stage (or one twice), a stage has no compiled brick, or its bricks are not convex
    (a value leaves them to a brick that is not fused and comes back): the message names them.
    """
    if isinstance(fused_stages, str):
        raise ExportError(f"fused_stages must be a list of stage names, e.g. [{fused_stages!r}], not a string")
    stages = [str(getattr(stage, "name", stage)).upper() for stage in fused_stages]
    if stages and module_format != "aot_inductor":
        raise ExportError("fused_stages needs module_format='aot_inductor': a fused stage is one AOTInductor "
                          f"program, got module_format={module_format!r}")
    members: Dict[str, List[BrickSpec]] = {}
    for stage in stages:
        if stage not in STAGE_NAMES:
            raise ExportError(f"fused_stages names no stage: {stage!r}; the stages are {', '.join(STAGE_NAMES)}")
        if stage in members:
            raise ExportError(f"fused_stages names the stage {stage} twice")
        alive = alive_bricks(specs, stage)
        chosen = [spec for spec in alive if spec.name in compiled]
        if not chosen:
            raise ExportError(f"fused stage {stage}: no brick alive in it is compiled (visualization renderers, "
                              "LOSS/METRIC bricks and keep_torchscript bricks are not), so there is nothing to fuse")
        _check_convex(alive, chosen, stage)
        members[stage] = chosen
    return members


def _check_convex(alive: Sequence[BrickSpec], chosen: Sequence[BrickSpec], stage: str) -> None:
    """Raises ExportError naming the bricks when a brick outside `chosen` both depends on one of
    them and feeds one of them (the program could not run before or after it). A brick that
    reads "__all__" depends on every brick before it, as the server plans it."""
    producer = {name: spec for spec in alive for name in spec.outputs}
    fused = {spec.name for spec in chosen}
    below: Dict[str, str] = {}  # brick outside the set -> the fused brick it depends on
    for position, spec in enumerate(alive):  # collection order is an execution order
        upstream_bricks = [(producer[name], name) for name in spec.tensor_inputs
                           if name in producer and producer[name].name != spec.name]
        if "__all__" in spec.inputs:
            upstream_bricks += [(earlier, "__all__") for earlier in alive[:position]]
        for upstream, name in upstream_bricks:
            source = upstream.name if upstream.name in fused else below.get(upstream.name)
            if source is None:
                continue
            if spec.name in fused and upstream.name not in fused:
                raise ExportError(f"fused stage {stage}: its bricks are not convex: brick '{upstream.name}' (not fused) "
                                  f"consumes the output of fused brick '{source}' and feeds fused brick "
                                  f"'{spec.name}' ('{name}'), so no single program can run them; fuse "
                                  f"'{upstream.name}' too or list '{spec.name}' in keep_torchscript")
            if spec.name not in fused:
                below.setdefault(spec.name, source)


def fused_io(chosen: Sequence[BrickSpec]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(inputs, outputs) of the program of `chosen`: values read from outside the set in order of
    first use, and every value the bricks produce in production order."""
    produced = [name for spec in chosen for name in spec.outputs]
    inputs: Dict[str, None] = {}
    for spec in chosen:
        for name in spec.tensor_inputs:
            if name not in produced:
                inputs.setdefault(name, None)
    return tuple(inputs), tuple(produced)


class _FusedForward(nn.Module):
    """The composed forward of bricks: each called as its brick calls it, in order."""

    def __init__(self, chosen: Sequence[BrickSpec], input_names: Sequence[str], output_names: Sequence[str]) -> None:
        super().__init__()
        self.bricks = nn.ModuleList(positional_adapter(require_module(spec).eval(), spec.input_arguments)
                                    for spec in chosen)
        self.reads = [tuple(spec.inputs) for spec in chosen]
        self.writes = [tuple(spec.outputs) for spec in chosen]
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)

    def forward(self, *values: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        env = dict(zip(self.input_names, values))
        for brick, reads, writes in zip(self.bricks, self.reads, self.writes):
            result = brick(*(env[name] for name in reads))
            if len(writes) == 1:
                env[writes[0]] = result
            else:
                env.update(zip(writes, result))
        return tuple(env[name] for name in self.output_names)


def export_fused(stage: str, chosen: Sequence[BrickSpec], captured: Mapping[str, Mapping[str, Tuple[Any, ...]]],
                 max_batch_size: int) -> Tuple[FusedStage, Any, _FusedForward, Tuple[torch.Tensor, ...]]:
    """Captures the program of `chosen` in `stage` from the arguments its bricks received in the
    example run of that stage. Returns (its FusedStage before compiling, the exported program, the
    eager composed module, the example arguments). Raises ExportError naming the stage (and the
    brick) when the stage has no example run, an input is not a batched CPU tensor, torch.export
    fails or fixes the batch."""
    input_names, output_names = fused_io(chosen)
    args: Dict[str, Any] = {}
    for spec in chosen:
        run = captured.get(spec.name, {}).get(stage)
        if run is None:
            raise ExportError(f"fused stage {stage}: brick '{spec.name}' did not run in the example inputs of stage "
                              f"{stage}; give example_inputs for {stage}")
        for name, value in zip(spec.inputs, run):
            if name in input_names:
                args.setdefault(name, value)
    example = tuple(args[name] for name in input_names)
    owner = BrickSpec(name=f"<fused {stage}>", collection_path=(), module=None, input_names=input_names,
                      output_names=output_names, inputs=input_names, outputs=output_names, kind="NOT_TRAINABLE",
                      alive=frozenset({stage}), brick_type="FusedStage")
    inputs = aoti_export.program_inputs(owner, example, stage)
    module = _FusedForward(chosen, input_names, output_names)
    try:
        program = aoti_export.export_dynamic_batch(module, example, max_batch_size)
    except Exception as error:  # torch.export raises many types (user errors, guards, unsupported ops)
        raise ExportError(f"fused stage {stage} (bricks {', '.join(spec.name for spec in chosen)}) cannot be "
                          f"captured by torch.export: {first_line(error)}; leave the stage out of fused_stages or "
                          "list the brick at fault in keep_torchscript") from error
    bounds = aoti_export.batch_range(program)
    if bounds is None:
        raise ExportError(f"fused stage {stage}: torch.export fixed the batch dimension, so the program would "
                          "take one batch size only")
    fused = FusedStage(stage, tuple(spec.name for spec in chosen), input_names, output_names,
                       CompiledProgram(inputs, bounds[0], bounds[1], device="cpu"))
    return fused, program, module, tuple(arg.detach().contiguous() for arg in example)


def save_fused(fused: FusedStage, program: Any, module: _FusedForward, example: Tuple[torch.Tensor, ...],
               root: Path, rtol: float, atol: float) -> FusedStage:
    """Compiles the program (or copies it from the compile cache) to `root / fused.module_file`,
    checks it against the eager composed forward at the example batch and at batch 1, and
    returns the FusedStage with the instruction sets it was compiled for. Raises ExportError
    naming the stage when AOTInductor fails or an output differs."""
    from torch._inductor import aoti_load_package

    path = root / fused.module_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        aoti_cache.compile_package(program, path, aoti_export.INDUCTOR_CONFIGS)
    except Exception as error:  # inductor and the C++ compiler fail in many ways
        raise ExportError(f"fused stage {fused.stage}: AOTInductor cannot compile it: {first_line(error)}; leave "
                          "the stage out of fused_stages") from error
    package = aoti_load_package(str(path))
    for rows in (example, tuple(arg[:1].contiguous() for arg in example)):
        with torch.no_grad():
            want = module(*rows)
            got = package(*rows)
        got = [got] if isinstance(got, torch.Tensor) else list(got)
        for name, tensor, other in zip(fused.output_names, want, got):
            if not values_agree(tensor, other, rtol, atol):
                raise ExportError(f"fused stage {fused.stage}: the compiled program's output '{name}' at batch "
                                  f"{rows[0].shape[0]} differs from the eager bricks' (rtol {rtol}, atol {atol}); "
                                  "leave the stage out of fused_stages")
        if len(got) != len(fused.output_names):
            raise ExportError(f"fused stage {fused.stage}: the compiled program returns {len(got)} tensors for "
                              f"{len(fused.output_names)} outputs")
    metadata = package.get_metadata()
    compiled = fused.compiled
    return FusedStage(fused.stage, fused.bricks, fused.input_names, fused.output_names,
                      CompiledProgram(compiled.inputs, compiled.min_batch, compiled.max_batch,
                                      device=metadata.get("AOTI_DEVICE_KEY", compiled.device),
                                      cpu_isa=metadata.get("AOTI_CPU_ISA", "")))
