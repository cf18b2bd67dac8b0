"""`export_brick_collection`: writes a servable package (one version directory) from a collection.

The package holds `bricks.pbtxt`, one module file per brick under `modules/` (TorchScript `.pt`,
or with module_format="aot_inductor" an AOTInductor package `.pt2`) and, for each stage with
example inputs, a reference file under `reference/` (see reference.py). The version
directory is assembled beside its final place and moved in at the end, so a server polling the
repository never sees a half-written version.
"""
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from . import aoti_export, fused_export, jit_deprecation, module_export
from .collection import BrickSpec, flatten_collection
from .errors import ExportError
from .examples import build_input_specs, examples_per_stage
from .graph import validate_stages
from .pbtxt import format_brick_collection
from .reference import encode_png_rows, execute, flatten_value, output_tensors, save_reference, values_agree
from .stages import SERVED_STAGES, STAGE_NAMES, check_stage_tags

EXPORTER_VERSION = "0.1.0"
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


@jit_deprecation.quietly
def export_brick_collection(collection: Any, version_dir: Any, example_inputs: Optional[Mapping] = None,
                            input_specs: Optional[Mapping[str, Any]] = None, name: Optional[str] = None,
                            *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
                            stage_tags: Optional[Mapping[str, Any]] = None, module_format: str = "torchscript",
                            max_batch_size: int = 64, keep_torchscript: Sequence[str] = (),
                            fused_stages: Sequence[str] = ()) -> Path:
    """Exports `collection` to `version_dir` (e.g. `repository/my_model/1`) and returns its path.

    `collection` is a torchbricks BrickCollection (0.1 `alive_stages` or >= 0.3 `tags`) or a
    plain nested dict of brick dicts. Tagged bricks run in the stages whose tag set (the
    library's `DEFAULT_MODEL_STAGE_TAGS`, with the stages `stage_tags` names replaced, e.g.
    `stage_tags={"INFERENCE": {"MODEL", "VISUALIZATION"}}`) holds one of their tags.

    `input_specs` may override a declared input's `(dtype, dims)`, or declare it an encoded
    image input with `EncodedImage(height, width)`: clients then send JPEG/PNG bytes, and the
    examples for it are uint8 [B, 3, H, W] images (saved in the reference as PNG files).
    Visualization bricks export when their callable is a renderer spec
    (`torchbricks_export.renderers`) or a scriptable module that renders one image.

    Every brick module is scripted, or traced with the arguments it received while running the
    example inputs. LOSS and METRIC bricks that do not script are left out with a warning.

    With `module_format="aot_inductor"`, every module brick except visualization renderers,
    LOSS/METRIC bricks (TorchScript as above) and the bricks named in `keep_torchscript`
    (e.g. `["head/classify"]`) is captured with torch.export from the arguments it received in
    the example run, its dimension 0 a dynamic batch of 1..`max_batch_size`, and compiled by
    AOTInductor for this machine's CPU (aoti_export.py; compiles are cached, aoti_cache.py).
    `fused_stages` (e.g. `["INFERENCE"]`, aot_inductor only) also compiles, per stage named, the
    compiled bricks alive in it into ONE program, their composed forward, which the server runs
    in place of those bricks (fused_export.py); their own packages stay for other requests.

    The exported modules are run again on the examples and must match the eager outputs within
    `rtol`/`atol` (compiled bricks also at batch 1). Raises ExportError, naming the brick, when
    the collection cannot be exported; `version_dir` is then left as it was.
    """
    version_dir = Path(version_dir)
    if not version_dir.name.isdigit() or int(version_dir.name) < 1:
        warnings.warn(f"version directory '{version_dir.name}' is not a positive integer; "
                      "the server only loads integer versions", stacklevel=2)
    # A brick alive in no stage (torchbricks' alive_stages="none", or tags no stage runs) is left out.
    flat = flatten_collection(collection, check_stage_tags(stage_tags))
    if stage_tags is not None and not any(spec.tagged for spec in flat):
        warnings.warn("stage_tags has no effect: no brick of the collection has tags (torchbricks 0.1 bricks "
                      "and plain dicts use alive_stages)", stacklevel=2)
    specs = [spec for spec in flat if spec.alive]
    if not specs:
        raise ExportError("the collection holds no bricks")
    _check_module_files_unique(specs)
    validate_stages(specs)
    examples = examples_per_stage(specs, example_inputs)
    compiled = aoti_export.bricks_to_compile(flat, specs, module_format, keep_torchscript, max_batch_size,
                                             bool(examples))
    fused_members = fused_export.fused_members(specs, compiled, fused_stages, module_format)
    modes = {m: m.training for spec in specs if isinstance(spec.module, nn.Module) for m in spec.module.modules()}
    try:
        specs, exported, traced = _export_modules(specs, examples, compiled, max_batch_size)
        fused = _export_fused(specs, examples, fused_members, max_batch_size)
        staging = _staging_dir(version_dir)
        try:
            _write_package(staging, specs, exported, examples, input_specs, name or version_dir.resolve().parent.name,
                           traced, rtol, atol, module_format, fused)
            _move_into_place(staging, version_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        for module, training in modes.items():
            module.training = training
    return version_dir


def _export_modules(specs: List[BrickSpec], examples: Mapping[str, Mapping[str, Tensor]], compiled: FrozenSet[str],
                    max_batch_size: int
                    ) -> Tuple[List[BrickSpec], Dict[str, module_export.ExportedModule], List[str]]:
    """Scripts (or traces) every brick, or captures the `compiled` ones with torch.export;
    returns the bricks kept, their modules and the traced names."""
    exported: Dict[str, module_export.ExportedModule] = {}
    failures: Dict[str, str] = {}  # bricks that do not script
    to_bind: Dict[str, str] = {}   # bricks that script but must be traced per stage
    for spec in specs:
        if spec.renderer:
            if spec.has_module_file:
                exported[spec.name] = module_export.ExportedModule(module=module_export.script_renderer(spec))
            continue
        if spec.name in compiled:
            continue  # captured below, from the example run
        if spec.unexportable:
            failures[spec.name] = spec.unexportable
            continue
        module, error = module_export.try_script(spec)
        if module is None:
            failures[spec.name] = error
        elif module_export.needs_stage_binding(spec, module):
            to_bind[spec.name] = "it takes torchbricks' Stage enum, which the server cannot pass"
        else:
            exported[spec.name] = module
    specs = _leave_out_unscriptable_scoring(specs, failures)
    failures.update(to_bind)  # scripted, but traced per stage all the same
    to_trace = [spec for spec in specs if spec.name in failures]
    for spec in to_trace:
        module_export.check_traceable(spec, failures[spec.name])
    captured = _capture_arguments(specs, examples) if to_trace or compiled else {}
    for spec in to_trace:
        per_stage = module_export.needs_stage_binding(spec, None)
        exported[spec.name] = module_export.trace(spec, captured.get(spec.name, {}), failures[spec.name], per_stage)
        if per_stage:
            _check_stage_coverage(spec, exported[spec.name])
    for spec in specs:
        if spec.name in compiled:
            exported[spec.name] = aoti_export.export_program(spec, captured.get(spec.name, {}), max_batch_size)
    return specs, exported, [spec.name for spec in to_trace]


def _export_fused(specs: List[BrickSpec], examples: Mapping[str, Mapping[str, Tensor]],
                  members: Mapping[str, List[BrickSpec]], max_batch_size: int) -> List[Tuple[Any, ...]]:
    """Captures each fused stage's program: (FusedStage, program, eager module, example args)."""
    if not members:
        return []
    captured = _capture_arguments(specs, examples)
    return [fused_export.export_fused(stage, chosen, captured, max_batch_size) for stage, chosen in members.items()]


def _check_stage_coverage(spec: BrickSpec, exported: module_export.ExportedModule) -> None:
    """Raises ExportError when a brick traced per stage lacks a served stage it is alive in."""
    missing = [stage for stage in SERVED_STAGES if stage in spec.alive and stage not in exported.stage_modules]
    if missing:
        raise ExportError(f"brick '{spec.name}' ({spec.module_type}) takes the input 'stage' and is traced once per "
                          f"stage, but example_inputs cover no run of it in {', '.join(missing)}; give "
                          "example_inputs for those stages (e.g. {'INFERENCE': {...}, 'EXPORT': {...}})")


def _leave_out_unscriptable_scoring(specs: List[BrickSpec], failures: Mapping[str, str]) -> List[BrickSpec]:
    """Drops LOSS/METRIC bricks that do not script (and bricks alive only in training stages that
    consume their outputs), warning for each. Raises ExportError if an INFERENCE or EXPORT brick
    consumes a dropped output."""
    dropped = {spec.name: spec.unexportable or f"cannot be scripted ({failures[spec.name]})"
               for spec in specs if spec.name in failures and spec.kind in ("LOSS", "METRIC")}
    changed = True
    while changed:
        changed = False
        lost = {name: spec.name for spec in specs if spec.name in dropped for name in spec.outputs}
        for spec in specs:
            consumed = [name for name in spec.tensor_inputs if name in lost]
            if spec.name in dropped or not consumed:
                continue
            if spec.alive & {"INFERENCE", "EXPORT"}:
                source = lost[consumed[0]]
                raise ExportError(f"brick '{source}' {dropped[source]} and brick '{spec.name}', alive in "
                                  f"INFERENCE/EXPORT, consumes its output '{consumed[0]}'; make '{source}' scriptable")
            dropped[spec.name] = f"consumes '{consumed[0]}' of the left-out brick '{lost[consumed[0]]}'"
            changed = True
    for spec in specs:
        if spec.name in dropped:
            warnings.warn(f"{spec.kind} brick '{spec.name}' {dropped[spec.name]}; it is left out of the "
                          "exported package and will not be served", stacklevel=4)
    return [spec for spec in specs if spec.name not in dropped]


def _capture_arguments(specs: Sequence[BrickSpec], examples: Mapping[str, Mapping[str, Tensor]]
                       ) -> Dict[str, Dict[str, Tuple[Any, ...]]]:
    """brick name -> stage -> the arguments the brick received in the eager run of that stage."""
    captured: Dict[str, Dict[str, Tuple[Any, ...]]] = {}
    for stage in examples:
        stage_args: Dict[str, Tuple[Any, ...]] = {}
        with torch.no_grad():
            execute(specs, stage, examples[stage], captured_args=stage_args)
        for name, args in stage_args.items():
            captured.setdefault(name, {})[stage] = args
    return captured


def _write_package(root: Path, specs: Sequence[BrickSpec], exported: Mapping[str, module_export.ExportedModule],
                   examples: Mapping[str, Mapping[str, Tensor]], input_specs: Optional[Mapping[str, Any]],
                   name: str, traced: Sequence[str], rtol: float, atol: float, module_format: str,
                   fused: Sequence[Tuple[Any, ...]] = ()) -> None:
    loaded, renderers = {}, {}
    for spec in specs:
        if not spec.has_module_file:
            continue
        saved = _save_modules(root, spec, exported[spec.name])
        # A renderer module draws one image; the eager brick stays in the batched runs below.
        if spec.renderer:
            renderers[spec.name] = saved.module
        else:
            loaded[spec.name] = saved
        if saved.package is not None:
            aoti_export.check_single_item(spec, saved, rtol, atol)
    fused_stages = [fused_export.save_fused(*captured, root, rtol, atol) for captured in fused]
    inputs = build_input_specs(specs, examples, input_specs)
    encoded = {spec.name: spec for spec in inputs if spec.encoded_image is not None}
    for stage in (s for s in STAGE_NAMES if s in examples):
        with torch.no_grad():
            eager = execute(specs, stage, examples[stage])
            scripted = execute(specs, stage, examples[stage], modules=loaded)
            for spec in specs:
                if spec.name in renderers and stage in spec.alive:
                    module_export.check_renderer(spec, renderers[spec.name], stage, eager)
        _check_parity(specs, stage, eager, scripted, rtol, atol)
        reference_inputs = {name: encode_png_rows(name, tensor, encoded[name]) if name in encoded else tensor
                            for name, tensor in examples[stage].items()}
        save_reference(root / "reference" / f"{stage}.pt", stage, reference_inputs,
                       output_tensors(specs, stage, eager))
    # "torchbricks_serve": the exporter's name as packages have recorded it since 0.1.0, when the
    # exporter shipped inside the client's distribution; kept so packages stay byte-identical.
    metadata = {"exporter": "torchbricks_serve", "exporter_version": EXPORTER_VERSION,
                "torch_version": torch.__version__,
                "reference_stages": ",".join(stage for stage in STAGE_NAMES if stage in examples),
                "reference_rtol": repr(rtol), "reference_atol": repr(atol)}
    if traced:
        metadata["traced_bricks"] = ",".join(traced)
    if module_format != "torchscript":
        metadata["module_format"] = module_format
    text = format_brick_collection(name, inputs, specs, metadata, {**exported, **loaded}, fused_stages)
    (root / "bricks.pbtxt").write_text(text, encoding="utf-8")


def _save_modules(root: Path, spec: BrickSpec, exported: module_export.ExportedModule) -> module_export.ExportedModule:
    """Writes the brick's module file(s) and returns them as loaded back from disk."""
    if exported.program is not None:
        return aoti_export.save_package(spec, exported, root)

    def save(module: torch.jit.ScriptModule, relative: str) -> torch.jit.ScriptModule:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(module, str(path))
        return torch.jit.load(str(path), map_location="cpu")

    if exported.stage_modules:
        return module_export.ExportedModule(
            stage_modules={stage: save(module, spec.stage_module_file(stage))
                           for stage, module in exported.stage_modules.items()}, traced=True)
    return module_export.ExportedModule(module=save(exported.module, spec.module_file), keywords=exported.keywords,
                                        traced=exported.traced)


def _check_parity(specs: Sequence[BrickSpec], stage: str, eager: Mapping[str, Any], scripted: Mapping[str, Any],
                  rtol: float, atol: float) -> None:
    """Raises ExportError naming the brick whose exported module disagrees with its eager module."""
    for spec in specs:
        if stage not in spec.alive or spec.renderer:
            continue
        for output in spec.outputs:
            want, got = flatten_value(output, eager[output]), flatten_value(output, scripted[output])
            for key, tensor in want.items():
                other = got.get(key)
                if other is None or other.shape != tensor.shape or other.dtype != tensor.dtype:
                    raise ExportError(f"brick '{spec.name}': the exported module's output '{key}' in stage {stage} "
                                      f"has another shape or type than the eager module's")
                if not values_agree(tensor, other, rtol, atol):
                    diff = (other.double() - tensor.double()).abs().max().item()
                    raise ExportError(f"brick '{spec.name}': the exported module's output '{key}' in stage {stage} "
                                      f"differs from the eager module's (max abs diff {diff:g}, "
                                      f"rtol {rtol}, atol {atol})")


def _check_module_files_unique(specs: Sequence[BrickSpec]) -> None:
    """Raises ExportError when two bricks would write one file (a brick traced per stage
    may write `<name>.<STAGE>.pt` beside its `<name>.pt`)."""
    seen: Dict[str, str] = {}
    for spec in specs:
        files = [spec.module_file]
        if spec.takes_stage:
            files += [spec.stage_module_file(stage) for stage in STAGE_NAMES]
        for file in files:
            if seen.get(file, spec.name) != spec.name:
                raise ExportError(f"bricks '{seen[file]}' and '{spec.name}' would both be saved as "
                                  f"'{file}'; rename one of them")
            seen[file] = spec.name


def _staging_dir(version_dir: Path) -> Path:
    if version_dir.exists() and not version_dir.is_dir():
        raise ExportError(f"'{version_dir}' exists and is not a directory")
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{version_dir.name}.export-", dir=version_dir.parent))


def _move_into_place(staging: Path, version_dir: Path) -> None:
    if version_dir.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{version_dir.name}.replaced-", dir=version_dir.parent))
        os.replace(version_dir, retired)
        os.replace(staging, version_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, version_dir)
    os.chmod(version_dir, 0o755)
