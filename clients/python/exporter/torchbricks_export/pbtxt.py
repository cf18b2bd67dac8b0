"""Writes `bricks.pbtxt`: message torchbricks.package.BrickCollection in protobuf text format.

The text is produced directly (no generated protobuf code is needed); strings are escaped the
way protobuf's text format expects, non-ASCII bytes as octal escapes.
"""
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch

from .collection import BrickSpec
from .stages import STAGE_NAMES

DATA_TYPES = {
    torch.bool: "TYPE_BOOL", torch.uint8: "TYPE_UINT8", torch.int8: "TYPE_INT8",
    torch.int16: "TYPE_INT16", torch.int32: "TYPE_INT32", torch.int64: "TYPE_INT64",
    torch.float16: "TYPE_FP16", torch.float32: "TYPE_FP32", torch.float64: "TYPE_FP64",
    torch.bfloat16: "TYPE_BF16",
}
DATA_TYPE_NAMES = frozenset(DATA_TYPES.values()) | {"TYPE_INVALID", "TYPE_UINT16", "TYPE_UINT32",
                                                    "TYPE_UINT64", "TYPE_STRING"}


@dataclass(frozen=True)
class InputSpec:
    """A declared collection input (TensorSpec); dims None means the shape is not checked."""

    name: str
    data_type: str = "TYPE_INVALID"
    dims: Optional[Tuple[int, ...]] = None
    # (height, width) of an encoded image input, (0, 0) without a resize; None for a tensor.
    encoded_image: Optional[Tuple[int, int]] = None


@dataclass(frozen=True)
class CompiledProgram:
    """What an AOT_INDUCTOR brick's compiled program takes (message CompiledProgram): one input
    per brick input, dims[0] -1 (the batch, min_batch..max_batch) and the rest fixed."""

    inputs: Tuple[InputSpec, ...]
    min_batch: int
    max_batch: int
    device: str = "cpu"
    cpu_isa: str = ""  # AOTInductor's AOTI_CPU_ISA, known once compiled

    def mismatch(self, args: Sequence[Any]) -> str:
        """Why `args` cannot be passed to the program ("" when they can): the server's checks."""
        if len(args) != len(self.inputs):
            return f"the compiled program takes {len(self.inputs)} inputs, got {len(args)}"
        for spec, arg in zip(self.inputs, args):
            if not isinstance(arg, torch.Tensor):
                return f"input '{spec.name}' must be a tensor, got {type(arg).__name__}"
            dims = tuple(arg.shape)
            fixed_differ = len(dims) != len(spec.dims) or dims[1:] != tuple(spec.dims[1:])
            if fixed_differ or DATA_TYPES.get(arg.dtype) != spec.data_type:
                return (f"input '{spec.name}' is {arg.dtype} {list(dims)}, but the compiled program takes "
                        f"{spec.data_type} {list(spec.dims)}")
            if arg.device.type != self.device:
                return f"input '{spec.name}' is on {arg.device}, the compiled program runs on {self.device}"
            if not self.min_batch <= dims[0] <= self.max_batch:
                return (f"input '{spec.name}' has batch {dims[0]}, outside the compiled program's range "
                        f"{self.min_batch}..{self.max_batch}")
        return ""


def quote(text: str) -> str:
    """A protobuf text-format string literal for `text`."""
    escapes = {ord('"'): '\\"', ord("\\"): "\\\\", ord("'"): "\\'", ord("\n"): "\\n",
               ord("\r"): "\\r", ord("\t"): "\\t"}
    out = []
    for byte in text.encode("utf-8"):
        if byte in escapes:
            out.append(escapes[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def format_brick_collection(name: str, inputs: Sequence[InputSpec], specs: Sequence[BrickSpec],
                            metadata: Mapping[str, str], exported: Optional[Mapping[str, Any]] = None,
                            fused_stages: Sequence[Any] = ()) -> str:
    """The full text of bricks.pbtxt; `specs` must be in collection (depth-first) order.
    `fused_stages` holds fused_export.FusedStage records (message FusedStage).

    `exported` (brick name -> module_export.ExportedModule) says how each module is called:
    by keyword (input_arguments), per stage (stage_modules) or as a compiled AOTInductor
    program (module_format, compiled); absent means one positional TorchScript file."""
    exported = exported or {}
    lines: List[str] = [f"name: {quote(name)}"]
    for spec in inputs:
        lines.append("inputs {")
        lines.append(f"  name: {quote(spec.name)}")
        lines.append(f"  data_type: {spec.data_type}")
        lines.extend(f"  dims: {dim}" for dim in spec.dims or ())
        if spec.encoded_image is not None:
            height, width = spec.encoded_image
            lines.append(f"  encoded_image {{ height: {height} width: {width} }}")
        lines.append("}")
    lines.extend(_format_nodes(specs, exported))
    for fused in fused_stages:
        lines.extend(_format_fused(fused))
    for key, value in metadata.items():
        lines.extend(["metadata {", f"  key: {quote(key)}", f"  value: {quote(value)}", "}"])
    return "\n".join(lines) + "\n"


def _format_nodes(specs: Sequence[BrickSpec], exported: Mapping[str, Any]) -> List[str]:
    """Rebuilds the nesting of `nodes` from each brick's collection path."""
    lines: List[str] = []
    open_path: Tuple[str, ...] = ()
    for spec in specs:
        shared = 0
        while (shared < len(open_path) and shared < len(spec.collection_path)
               and open_path[shared] == spec.collection_path[shared]):
            shared += 1
        for depth in range(len(open_path), shared, -1):  # close collections the brick is not in
            indent = "  " * (2 * depth - 2)
            lines.extend([f"{indent}  }}", f"{indent}}}"])
        for depth in range(shared, len(spec.collection_path)):  # open the brick's collections
            indent = "  " * (2 * depth)
            lines.extend([f"{indent}nodes {{",
                          f"{indent}  name: {quote(spec.collection_path[depth])}", f"{indent}  collection {{"])
        open_path = spec.collection_path
        indent = "  " * (2 * len(open_path))
        lines.append(f"{indent}nodes {{")
        lines.append(f"{indent}  name: {quote(spec.name.rsplit('/', 1)[-1])}")
        lines.extend(f"{indent}  {line}" for line in _format_brick(spec, exported))
        lines.append(f"{indent}}}")
    for depth in range(len(open_path), 0, -1):
        indent = "  " * (2 * depth - 2)
        lines.extend([f"{indent}  }}", f"{indent}}}"])
    return lines


def _format_brick(spec: BrickSpec, exported: Mapping[str, Any]) -> List[str]:
    lines = ["brick {", f"  kind: {spec.kind}"]
    lines.extend(f"  input_names: {quote(name)}" for name in spec.input_names)
    lines.extend(f"  output_names: {quote(name)}" for name in spec.output_names)
    if spec.alive_all:
        lines.append("  alive_all: true")
    else:
        lines.extend(f"  alive_stages: {stage}" for stage in STAGE_NAMES if stage in spec.alive)
    module = exported.get(spec.name)
    if module is not None and module.stage_modules:
        for stage in STAGE_NAMES:
            if stage in module.stage_modules:
                lines.append(f"  stage_modules {{ stage: {stage} module_file: {quote(spec.stage_module_file(stage))} }}")
    elif module is not None and module.compiled is not None:
        lines.append(f"  module_file: {quote(spec.compiled_module_file)}")
        lines.extend(f"  {line}" for line in _format_compiled(module.compiled))
    elif spec.has_module_file:
        lines.append(f"  module_file: {quote(spec.module_file)}")
    if module is not None and module.keywords:
        lines.extend(f"  input_arguments: {quote(name)}" for name in module.keywords)
    lines.append(f"  module_type: {quote(spec.module_type)}")
    lines.append(f"  brick_type: {quote(spec.brick_type)}")
    if spec.renderer:
        lines.append("  visualizer {")
        lines.append(f"    renderer: {quote(spec.renderer)}")
        for key, value in spec.renderer_parameters:
            lines.append(f"    parameters {{ key: {quote(key)} value: {quote(value)} }}")
        lines.append("  }")
    lines.append("}")
    return lines


def _format_fused(fused: Any) -> List[str]:
    lines = ["fused_stages {", f"  stage: {fused.stage}", f"  module_file: {quote(fused.module_file)}"]
    lines.extend(f"  bricks: {quote(name)}" for name in fused.bricks)
    lines.extend(f"  input_names: {quote(name)}" for name in fused.input_names)
    lines.extend(f"  output_names: {quote(name)}" for name in fused.output_names)
    lines.extend(f"  {line}" for line in _format_compiled(fused.compiled)[1:])
    lines.append("}")
    return lines


def _format_compiled(compiled: CompiledProgram) -> List[str]:
    lines = ["module_format: AOT_INDUCTOR", "compiled {"]
    for spec in compiled.inputs:
        dims = ", ".join(str(dim) for dim in spec.dims)
        lines.append(f"  inputs {{ name: {quote(spec.name)} data_type: {spec.data_type} dims: [{dims}] }}")
    lines.extend([f"  min_batch: {compiled.min_batch}", f"  max_batch: {compiled.max_batch}",
                  f"  device: {quote(compiled.device)}", f"  cpu_isa: {quote(compiled.cpu_isa)}", "}"])
    return lines
