"""Eager reference execution of a brick collection and the reference files saved beside a package.

`execute` runs the bricks alive in one stage, in collection order, with torchbricks semantics:
a module is called with positional arguments, or with keywords when its brick's input_names
was a dict; outputs are named by position; the special input "stage" receives what the
brick's library hands it (torchbricks 0.1: its `Stage` enum; otherwise the stage name as an
upper-case str) and "__all__" a Dict[str, Tensor] of every tensor computed so far.

A reference file `reference/<STAGE>.pt` is a TorchScript module with the attributes
`stage: str`, `inputs: Dict[str, Tensor]` and `outputs: Dict[str, Tensor]`; a dict output
`d = {"k": t}` produced under the name "parts" is saved flattened as "parts/k".
"""
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from . import jit_deprecation
from .collection import BrickSpec, flatten_collection
from .errors import ExportError
from .graph import alive_bricks
from .stages import stage_name


def execute(specs: Sequence[BrickSpec], stage: str, named_inputs: Mapping[str, Any],
            modules: Optional[Mapping[str, Callable]] = None,
            captured_args: Optional[Dict[str, Tuple[Any, ...]]] = None) -> Dict[str, Any]:
    """Runs the bricks alive in `stage` and returns every value: the inputs, then each output.
    Visualization bricks that render per image are not run.

    `modules` replaces the bricks it names by a callable `(spec, args, stage) -> result`
    (used to run the exported modules); `captured_args`, when given, receives the arguments
    each brick was called with, in the order of its inputs.
    Raises ExportError naming the brick when an input is missing, a module raises, or its
    outputs do not match its output names.
    """
    values: Dict[str, Any] = dict(named_inputs)
    for spec in alive_bricks(specs, stage):
        if spec.renderer:
            # Drawings are the server's job (and torchbricks hands a renderer numpy arrays where
            # the server hands tensors); nothing is compared or consumed downstream.
            continue
        args = tuple(_argument(spec, name, stage, values) for name in spec.inputs)
        if captured_args is not None:
            captured_args[spec.name] = args
        exported = modules.get(spec.name) if modules is not None else None
        try:
            result = exported(spec, args, stage) if exported is not None else call_eager(spec, spec.module, args)
        except Exception as error:  # any failure of user code is reported with the brick's name
            raise ExportError(f"brick '{spec.name}' failed in stage {stage}: {first_line(error)}") from error
        values.update(name_outputs(spec, result, stage))
    return values


def call_eager(spec: BrickSpec, module: Callable, args: Sequence[Any]) -> Any:
    """Calls `module` as torchbricks does: by keyword when the brick's input_names was a dict."""
    if spec.input_arguments:
        return module(**dict(zip(spec.input_arguments, args)))
    return module(*args)


def name_outputs(spec: BrickSpec, result: Any, stage: str) -> Dict[str, Any]:
    """Maps a module's return value onto the brick's resolved output names."""
    if not spec.outputs:
        return {}
    if len(spec.outputs) == 1:
        return {spec.outputs[0]: result}
    if not isinstance(result, (tuple, list)) or len(result) != len(spec.outputs):
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise ExportError(f"brick '{spec.name}' in stage {stage}: returned {got} for "
                          f"{len(spec.outputs)} output names {list(spec.output_names)}")
    return dict(zip(spec.outputs, result))


def output_tensors(specs: Sequence[BrickSpec], stage: str, values: Mapping[str, Any]) -> Dict[str, Tensor]:
    """The tensors produced by the bricks alive in `stage`, dict outputs flattened as name/key.

    Values that are neither tensors nor dicts of tensors are left out with a warning.
    """
    tensors: Dict[str, Tensor] = {}
    for spec in alive_bricks(specs, stage):
        if spec.renderer:  # drawings are made by the server; nothing to compare
            continue
        for name in spec.outputs:
            flat = flatten_value(name, values[name])
            if not flat and not _is_tensor_dict(values[name]):
                warnings.warn(f"brick '{spec.name}': output '{name}' is a {type(values[name]).__name__}, "
                              "not a tensor or Dict[str, Tensor]; it is left out of the reference", stacklevel=2)
            tensors.update(flat)
    return tensors


def flatten_value(name: str, value: Any) -> Dict[str, Tensor]:
    """{name: tensor} for a tensor, {name/key: tensor} for a Dict[str, Tensor], {} otherwise."""
    if isinstance(value, Tensor):
        return {name: value}
    if _is_tensor_dict(value):
        return {f"{name}/{key}": tensor for key, tensor in value.items()}
    return {}


def values_agree(want: Tensor, got: Tensor, rtol: float, atol: float) -> bool:
    """True when `got` has `want`'s shape and dtype and its values: within rtol/atol (NaN equal
    to NaN) for floating-point and complex tensors, exactly for the others."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if want.is_floating_point() or want.is_complex():
        return torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    return torch.equal(got, want)


def _is_tensor_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())


def run_reference(collection: Any, stage: Any, named_inputs: Mapping[str, Any]) -> Dict[str, Tensor]:
    """Runs `collection` (a brick collection, a plain dict, or a list of BrickSpec) eagerly.

    Returns the tensors produced in `stage` (not the inputs), as saved in reference files.
    """
    specs = collection if isinstance(collection, (list, tuple)) else flatten_collection(collection)
    stage = stage_name(stage)
    with torch.no_grad():
        values = execute(specs, stage, named_inputs)
    return output_tensors(specs, stage, values)


class ReferenceRecord(nn.Module):
    """The scripted container of one stage's reference inputs and outputs."""

    stage: str
    inputs: Dict[str, Tensor]
    outputs: Dict[str, Tensor]

    def __init__(self, stage: str, inputs: Dict[str, Tensor], outputs: Dict[str, Tensor]) -> None:
        super().__init__()
        self.stage = stage
        self.inputs = inputs
        self.outputs = outputs

    def forward(self) -> Dict[str, Tensor]:
        return self.outputs


@jit_deprecation.quietly
def save_reference(path: Path, stage: str, inputs: Mapping[str, Tensor], outputs: Mapping[str, Tensor]) -> None:
    """Writes a reference file (see the module docstring); tensors are copied to contiguous CPU."""
    def plain(tensors: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        return {name: tensor.detach().cpu().contiguous().clone() for name, tensor in tensors.items()}

    record = torch.jit.script(ReferenceRecord(stage, plain(inputs), plain(outputs)))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(record, str(path))


@jit_deprecation.quietly
def load_reference(path: Path) -> Tuple[str, Dict[str, Tensor], Dict[str, Tensor]]:
    """Reads a reference file back as (stage, inputs, outputs)."""
    record = torch.jit.load(str(path), map_location="cpu")
    return record.stage, dict(record.inputs), dict(record.outputs)


def encode_png_rows(name: str, images: Tensor, spec: Any) -> Tensor:
    """The example images of an encoded image input as the server receives them: one PNG file
    per image (lossless, so the server decodes exactly `images`), packed as BYTES rows
    (uint8 [B, 4 + L]: a 4-byte little-endian length, the bytes, zero padding)."""
    from torchvision.io import encode_png  # the exporter alone needs torchvision

    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ExportError(f"example input '{name}' is an encoded image input: give uint8 [B, 3, H, W] images, "
                          f"got {images.dtype} {list(images.shape)}")
    height, width = spec.encoded_image
    if height and (images.shape[2], images.shape[3]) != (height, width):
        raise ExportError(f"example input '{name}' has images of {images.shape[3]}x{images.shape[2]}, but the "
                          f"input resizes to {width}x{height}; give examples of that size")
    files = [encode_png(image.cpu().contiguous()).numpy().tobytes() for image in images]
    rows = torch.zeros(len(files), 4 + max((len(f) for f in files), default=0), dtype=torch.uint8)
    for row, data in zip(rows, files):
        row[:4] = torch.tensor(list(len(data).to_bytes(4, "little")), dtype=torch.uint8)
        row[4:4 + len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return rows


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, prefixed by its type."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _argument(spec: BrickSpec, name: str, stage: str, values: Mapping[str, Any]) -> Any:
    if name == "stage":
        return spec.stage_value(stage)
    if name == "__all__":
        return {key: value for key, value in values.items() if isinstance(value, Tensor)}
    if name not in values:
        raise ExportError(f"brick '{spec.name}' in stage {stage}: input '{name}' is neither a given input "
                          "nor an output of an earlier brick")
    return values[name]
