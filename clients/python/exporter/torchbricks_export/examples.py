"""Normalises `example_inputs` per stage and derives the declared input specs from them."""
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from .collection import BrickSpec
from .errors import ExportError
from .graph import alive_bricks, declared_inputs, required_inputs
from .pbtxt import DATA_TYPE_NAMES, DATA_TYPES, InputSpec
from .renderers import EncodedImage
from .stages import STAGE_NAMES, is_stage_like, stage_name


def examples_per_stage(specs: Sequence[BrickSpec], example_inputs: Any) -> Dict[str, Dict[str, Tensor]]:
    """Maps stage name -> the example tensors of exactly the inputs that stage requires.

    `example_inputs` is None, `{input: Tensor}` (used for every stage whose required inputs it
    holds) or `{stage: {input: Tensor}}`. Raises ExportError when a per-stage dict lacks a
    required input, a flat dict suits no stage, or a value is not a tensor.
    """
    if example_inputs is None:
        return {}
    if not isinstance(example_inputs, Mapping) or not example_inputs:
        raise ExportError("example_inputs must be a non-empty dict {input: Tensor} or {stage: {input: Tensor}}")
    if all(isinstance(v, Mapping) for v in example_inputs.values()) and all(map(is_stage_like, example_inputs)):
        return {stage_name(stage): _select(specs, stage_name(stage), inputs)
                for stage, inputs in example_inputs.items()}
    chosen = {}
    for stage in STAGE_NAMES:
        if alive_bricks(specs, stage) and all(name in example_inputs for name in required_inputs(specs, stage)):
            chosen[stage] = _select(specs, stage, example_inputs)
    if not chosen:
        missing = [name for name in declared_inputs(specs) if name not in example_inputs]
        raise ExportError(f"example_inputs provide the inputs of no stage; missing: {', '.join(missing)}")
    return chosen


def _select(specs: Sequence[BrickSpec], stage: str, inputs: Mapping[str, Any]) -> Dict[str, Tensor]:
    if not alive_bricks(specs, stage):
        raise ExportError(f"example_inputs given for stage {stage}, in which no brick is alive")
    selected = {}
    for name in required_inputs(specs, stage):
        if name not in inputs:
            consumer = next(s.name for s in alive_bricks(specs, stage) if name in s.tensor_inputs)
            raise ExportError(f"example_inputs for stage {stage} lack '{name}' (consumed by brick '{consumer}')")
        if not isinstance(inputs[name], Tensor):
            raise ExportError(f"example input '{name}' for stage {stage} must be a torch.Tensor, "
                              f"got {type(inputs[name]).__name__}")
        selected[name] = inputs[name]
    return selected


def build_input_specs(specs: Sequence[BrickSpec], examples: Mapping[str, Mapping[str, Tensor]],
                      overrides: Optional[Mapping[str, Any]]) -> List[InputSpec]:
    """Declared inputs: type and shape from the examples (dim 0 -> -1), then `overrides` applied.

    Dims that differ between stages become -1; differing dtypes or ranks leave them unchecked.
    Raises ExportError for an override of an unknown input or with a bad dtype or dims.
    """
    names = declared_inputs(specs)
    overrides = dict(overrides or {})
    unknown = [name for name in overrides if name not in names]
    if unknown:
        raise ExportError(f"input_specs name unknown inputs {unknown}; the collection's inputs are {names}")
    result = []
    for name in names:
        if name in overrides:
            result.append(_override(name, overrides[name]))
        else:
            result.append(_from_examples(name, [inputs[name] for inputs in examples.values() if name in inputs]))
    return result


def _from_examples(name: str, tensors: List[Tensor]) -> InputSpec:
    if not tensors:
        return InputSpec(name)
    dtypes = {tensor.dtype for tensor in tensors}
    data_type = DATA_TYPES.get(tensors[0].dtype, "TYPE_INVALID") if len(dtypes) == 1 else "TYPE_INVALID"
    if len({tensor.dim() for tensor in tensors}) != 1 or tensors[0].dim() == 0:
        return InputSpec(name, data_type)
    dims = [-1] + [size if all(t.shape[i] == size for t in tensors) else -1
                   for i, size in enumerate(tensors[0].shape) if i > 0]
    return InputSpec(name, data_type, tuple(dims))


def _override(name: str, spec: Any) -> InputSpec:
    if isinstance(spec, EncodedImage):
        return InputSpec(name, "TYPE_STRING", (-1,), (spec.height or 0, spec.width or 0))
    try:
        dtype, dims = spec
    except (TypeError, ValueError):
        raise ExportError(f"input_specs['{name}'] must be a pair (dtype, dims) or an EncodedImage, "
                          f"got {spec!r}") from None
    if isinstance(dtype, torch.dtype):
        data_type = DATA_TYPES.get(dtype, "TYPE_INVALID")
    elif dtype is None:
        data_type = "TYPE_INVALID"
    else:
        data_type = str(dtype).upper()
        data_type = data_type if data_type.startswith("TYPE_") else "TYPE_" + data_type
        if data_type not in DATA_TYPE_NAMES:
            raise ExportError(f"input_specs['{name}']: unknown data type {dtype!r}")
    if dims is not None and not all(isinstance(d, int) and d >= -1 for d in dims):
        raise ExportError(f"input_specs['{name}']: dims must be integers >= -1, got {dims!r}")
    return InputSpec(name, data_type, None if dims is None else tuple(dims))
