"""Flattens a brick collection into an ordered list of `BrickSpec` records.

Accepts a torchbricks BrickCollection (duck-typed: `.items()` over bricks and nested
collections; a brick has `.model` (or, for a metric brick, `.metrics`), `.input_names`,
`.output_names` and `.alive_stages` (0.1) or `.tags` (>= 0.3)) or a plain nested dict whose
leaves are brick dicts:
`{"module": m, "input_names": [...], "output_names": [...], "kind": "LOSS", "alive_stages": [...]}`.

`input_names` may be a list (the module is called with positional arguments) or, as in
torchbricks, a dict `{argument_name: value_name}` (the module is called with keywords).
"""
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, FrozenSet, List, Mapping as MappingType, Optional, Tuple

from torch import nn

from .errors import ExportError
from .naming import SPECIAL_INPUTS, resolve_name
from .renderers import BUILT_IN, TORCHSCRIPT, RendererSpec, TorchScriptRenderer
from .stages import (ALL_STAGES, BRICK_TYPE_FOR_KIND, DEFAULT_ALIVE, KINDS, kind_from_class_name,
                     kind_from_tags, library_stage_enum, parse_alive_stages, stages_from_tags)

BRICK_DICT_KEYS = frozenset({"module", "input_names", "output_names", "kind", "alive_stages"})


@dataclass(frozen=True)
class BrickSpec:
    """One brick, with its names as written and as resolved against its collection."""

    name: str                       # full name, "head0/classify"
    collection_path: Tuple[str, ...]  # enclosing collection, ("head0",)
    module: Any
    input_names: Tuple[str, ...]    # as written by the user
    output_names: Tuple[str, ...]
    inputs: Tuple[str, ...]         # resolved; specials kept as "stage" / "__all__"
    outputs: Tuple[str, ...]
    kind: str
    alive: FrozenSet[str]           # upper-case stage names
    brick_type: str
    # Visualization bricks that draw per image: a built-in renderer's name or "torchscript",
    # its parameters, and the callable (a RendererSpec, or the module that renders one image).
    renderer: str = ""
    renderer_parameters: Tuple[Tuple[str, str], ...] = ()
    render_callable: Any = None
    # The module's parameter name for each input when input_names was a dict (keyword call).
    input_arguments: Tuple[str, ...] = ()
    # What the brick's module receives as the special input "stage": None for the stage's
    # upper-case name (str), or the enum class whose member torchbricks 0.1 passes.
    stage_enum: Any = None
    # Why the brick has no TorchScript form (a torchmetrics collection), or "".
    unexportable: str = ""
    # True when its stages came from torchbricks >= 0.3 tags.
    tagged: bool = False

    def stage_value(self, stage: str) -> Any:
        """The value this brick's module receives for the special input "stage" in `stage`."""
        return self.stage_enum[stage] if self.stage_enum is not None else stage

    @property
    def takes_stage(self) -> bool:
        return "stage" in self.inputs

    @property
    def alive_all(self) -> bool:
        return self.alive == ALL_STAGES

    @property
    def module_type(self) -> str:
        return type(self.render_callable if self.renderer else self.module).__name__

    @property
    def has_module_file(self) -> bool:
        """False for a brick drawn by a built-in renderer, which has no TorchScript file."""
        return self.renderer in ("", TORCHSCRIPT)

    @property
    def module_file(self) -> str:
        return "modules/" + self.name.replace("/", ".") + ".pt"

    @property
    def compiled_module_file(self) -> str:
        """The file of the brick's AOTInductor package (module_format AOT_INDUCTOR)."""
        return "modules/" + self.name.replace("/", ".") + ".pt2"

    def stage_module_file(self, stage: str) -> str:
        """The file of the module traced for `stage` with its "stage" input bound."""
        return "modules/" + self.name.replace("/", ".") + f".{stage}.pt"

    @property
    def tensor_inputs(self) -> Tuple[str, ...]:
        """Resolved inputs that are named values (not the specials)."""
        return tuple(name for name in self.inputs if name not in SPECIAL_INPUTS)


def is_brick_object(value: Any) -> bool:
    return (all(hasattr(value, attr) for attr in ("input_names", "output_names"))
            and (hasattr(value, "model") or hasattr(value, "metrics")))


def is_brick_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and "module" in value and set(value) <= BRICK_DICT_KEYS


def flatten_collection(collection: Any, stage_tags: Optional[MappingType[str, Any]] = None) -> List[BrickSpec]:
    """Returns every brick of `collection` in collection order (depth first).

    Bricks with tags (torchbricks >= 0.3) are alive in a stage when one of their tags is in
    the stage's tag set: `stage_tags` ({"INFERENCE": {"MODEL", ...}, ...}) where given, else
    the library's own `brick_tags.DEFAULT_MODEL_STAGE_TAGS`. A brick none of whose tags any
    stage selects is warned about by name.
    Raises ExportError for an entry that is neither a brick nor a collection, a bad name, an
    unknown kind or stage, or a relative name that cannot be resolved.
    """
    specs: List[BrickSpec] = []
    _flatten_into(collection, (), specs, stage_tags)
    return specs


def _flatten_into(collection: Any, path: Tuple[str, ...], specs: List[BrickSpec],
                  stage_tags: Optional[MappingType[str, Any]]) -> None:
    if not hasattr(collection, "items"):
        where = "/".join(path) or "the root"
        raise ExportError(f"'{where}' is not a brick collection (it has no .items())")
    for key, value in collection.items():
        full = "/".join(path + (str(key),))
        if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
            raise ExportError(f"'{full}': brick and collection names must be non-empty strings "
                              "without '/' (and not '.' or '..')")
        if is_brick_object(value):
            specs.append(_spec_from_object(value, full, path, stage_tags))
        elif is_brick_dict(value):
            specs.append(_spec_from_dict(value, full, path))
        elif hasattr(value, "items"):
            _flatten_into(value, path + (key,), specs, stage_tags)
        else:
            raise ExportError(f"'{full}' is neither a brick nor a collection (got {type(value).__name__}); "
                              "a dict brick needs the key 'module'")


def _spec_from_object(brick: Any, full: str, path: Tuple[str, ...],
                      stage_tags: Optional[MappingType[str, Any]]) -> BrickSpec:
    brick_type = type(brick).__name__
    tags = getattr(brick, "tags", None)
    alive_stages = getattr(brick, "alive_stages", None)
    kind = (kind_from_tags(tags) if tags is not None else None) or kind_from_class_name(brick_type) or "TRAINABLE"
    if alive_stages is not None:
        alive = parse_alive_stages(alive_stages, f"brick '{full}'")
    elif tags is not None:
        alive = stages_from_tags(tags, brick, full, stage_tags)
    else:
        alive = DEFAULT_ALIVE[kind]
    unexportable = ""
    module = getattr(brick, "model", None)
    if module is None:  # torchbricks' BrickMetrics keeps a torchmetrics collection instead
        kind, module = "METRIC", getattr(brick, "metrics", None)
        unexportable = "is a torchmetrics metric, which has no TorchScript form"
    # torchbricks keeps the per-image callable on the brick (or, in older versions, on its model).
    draw = getattr(brick, "callable", None)
    if draw is None:
        draw = getattr(module, "callable", None)
    stage_enum = library_stage_enum(brick) if alive_stages is not None else None
    return _make_spec(full, path, module, brick.input_names, brick.output_names, kind, alive, brick_type,
                      draw if kind == "VISUALIZATION" else None, stage_enum=stage_enum, unexportable=unexportable,
                      tagged=alive_stages is None and tags is not None)


def _spec_from_dict(brick: Mapping, full: str, path: Tuple[str, ...]) -> BrickSpec:
    kind = str(brick.get("kind", "TRAINABLE")).upper()
    if kind not in KINDS:
        raise ExportError(f"brick '{full}': unknown kind {brick.get('kind')!r}; expected one of {', '.join(KINDS)}")
    if "alive_stages" in brick and brick["alive_stages"] is not None:
        alive = parse_alive_stages(brick["alive_stages"], f"brick '{full}'")
    else:
        alive = DEFAULT_ALIVE[kind]
    module = brick["module"]
    draw = None
    if kind == "VISUALIZATION" and isinstance(module, TorchScriptRenderer):
        module = draw = module.module
    elif kind == "VISUALIZATION" and (isinstance(module, RendererSpec) or not isinstance(module, nn.Module)):
        draw = module  # a renderer spec, or plain Python drawing code (refused with advice)
    return _make_spec(full, path, module, brick.get("input_names", ()), brick.get("output_names", ()),
                      kind, alive, BRICK_TYPE_FOR_KIND[kind], draw)


def _make_spec(full: str, path: Tuple[str, ...], module: Any, input_names: Any, output_names: Any,
               kind: str, alive: FrozenSet[str], brick_type: str, draw: Any = None, *,
               stage_enum: Any = None, unexportable: str = "", tagged: bool = False) -> BrickSpec:
    input_arguments: Tuple[str, ...] = ()
    if isinstance(input_names, Mapping):  # {argument_name: value_name}: a keyword call
        input_arguments = _as_names(tuple(input_names.keys()), full, "input_names (its argument names)")
        input_names = tuple(input_names.values())
    input_names = _as_names(input_names, full, "input_names")
    output_names = _as_names(output_names, full, "output_names")
    for special in SPECIAL_INPUTS:
        if special in output_names:
            raise ExportError(f"brick '{full}': '{special}' is reserved and cannot be an output name")
    outputs = tuple(resolve_name(name, path, full) for name in output_names)
    if len(set(outputs)) != len(outputs):
        raise ExportError(f"brick '{full}': output names repeat: {list(output_names)}")
    renderer, parameters = _renderer_of(full, draw, output_names)
    return BrickSpec(name=full, collection_path=path, module=module, input_names=input_names,
                     output_names=output_names, inputs=tuple(resolve_name(name, path, full) for name in input_names),
                     outputs=outputs, kind=kind, alive=frozenset(alive), brick_type=brick_type,
                     renderer=renderer, renderer_parameters=parameters, render_callable=draw if renderer else None,
                     input_arguments=input_arguments, stage_enum=stage_enum, unexportable=unexportable,
                     tagged=tagged)


def _renderer_of(full: str, draw: Any, output_names: Tuple[str, ...]) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    """(renderer, parameters) of a visualization brick's callable; ("", ()) when it has none."""
    if draw is None:
        return "", ()
    if isinstance(draw, RendererSpec):
        renderer, parameters = draw.renderer, tuple(sorted(draw.parameters.items()))
    elif isinstance(draw, nn.Module):
        renderer, parameters = TORCHSCRIPT, ()
    else:
        what = getattr(draw, "__name__", type(draw).__name__)
        raise ExportError(
            f"visualization brick '{full}': its callable {what} is plain Python, which the server cannot run. "
            "Pick a built-in renderer instead, e.g. callable=torchbricks_export.renderers.ImageClassification("
            f"class_names=[...]) (built-in: {', '.join(BUILT_IN)}; see docs/RENDERERS.md), or make it a "
            "scriptable torch.nn.Module that takes one image's values and returns uint8 [H, W, 3]")
    if len(output_names) != 1:
        raise ExportError(f"visualization brick '{full}' must have exactly one output name (its PNGs), "
                          f"has {list(output_names)}")
    return renderer, parameters


def _as_names(names: Any, full: str, field: str) -> Tuple[str, ...]:
    if names is None:
        return ()
    if isinstance(names, str):
        raise ExportError(f"brick '{full}': {field} must be a list of names, not the string {names!r}")
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ExportError(f"brick '{full}': {field} must hold non-empty strings, got {name!r}")
    return names
