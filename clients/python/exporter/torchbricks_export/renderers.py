"""Renderer specs for visualization bricks, and the encoded-image input spec.

A torchbricks visualization brick exports when its callable is one of these specs (the
server draws with its built-in renderer) or a scriptable torch.nn.Module that renders one
image (the server runs it per image):

    from torchbricks_export import renderers
    BrickPerImageVisualization(callable=renderers.ImageClassification(class_names=["cat", "dog"]),
                               input_names=["raw", "head/probabilities"], output_names=["visualization"])

The drawing itself happens in the server (docs/RENDERERS.md). Called in Python, as torchbricks
does per image, a spec returns the image unchanged (channels last, uint8), so a collection that
uses one still runs eagerly.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

BUILT_IN = ("classification", "segmentation", "detection", "keypoints", "heatmap")
TORCHSCRIPT = "torchscript"


def _names(class_names: Optional[Sequence[str]]) -> Dict[str, str]:
    if class_names is None:
        return {}
    names = [str(name) for name in class_names]
    if any("," in name for name in names):
        raise ValueError(f"class names may not contain ',': {names}")
    return {"class_names": ",".join(names)}


def _number(value: float) -> str:
    return repr(float(value))


class RendererSpec:
    """A built-in renderer by name with its parameters (all strings, as in bricks.pbtxt)."""

    def __init__(self, renderer: str, parameters: Optional[Dict[str, str]] = None, min_side: Optional[int] = None):
        if renderer not in BUILT_IN:
            raise ValueError(f"unknown renderer {renderer!r}; the built-in renderers are {', '.join(BUILT_IN)}")
        self.renderer = renderer
        self.parameters = dict(parameters or {})
        if min_side is not None:
            self.parameters["min_side"] = str(int(min_side))

    def __call__(self, image: Any, *values: Any) -> np.ndarray:
        """Python stand-in for the server's drawing: the image, unchanged, as uint8 [H, W, C]."""
        array = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = np.moveaxis(array, 0, -1)
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return array

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.renderer!r}, {self.parameters!r})"


class ImageClassification(RendererSpec):
    """Values after the image: class scores [B, K] (top-k drawn) or class indices [B] (+ scores [B])."""

    def __init__(self, class_names: Optional[Sequence[str]] = None, top_k: int = 1, min_side: Optional[int] = None):
        super().__init__("classification", {**_names(class_names), "top_k": str(int(top_k))}, min_side)


class SemanticSegmentation(RendererSpec):
    """Values after the image: a mask [B, h, w] of class ids, or scores [B, K, h, w]."""

    def __init__(self, alpha: float = 0.5, background: int = 0, class_names: Optional[Sequence[str]] = None,
                 palette: Optional[Sequence[Tuple[int, int, int]]] = None, min_side: Optional[int] = None):
        parameters = {"alpha": _number(alpha), "background": str(int(background)), **_names(class_names)}
        if palette is not None:
            parameters["palette"] = ";".join(",".join(str(int(c)) for c in colour) for colour in palette)
        super().__init__("segmentation", parameters, min_side)


class ObjectDetection(RendererSpec):
    """Values after the image: boxes [B, N, 4] xyxy, optional scores [B, N] and labels [B, N]."""

    def __init__(self, class_names: Optional[Sequence[str]] = None, score_threshold: float = 0.5,
                 normalized: bool = False, min_side: Optional[int] = None):
        super().__init__("detection", {**_names(class_names), "score_threshold": _number(score_threshold),
                                       "normalized": "true" if normalized else "false"}, min_side)


class Keypoints(RendererSpec):
    """Values after the image: keypoints [B, N, 2 | 3] or [B, P, N, 2 | 3] (x, y[, score])."""

    def __init__(self, score_threshold: float = 0.5, skeleton: Optional[Sequence[Tuple[int, int]]] = None,
                 normalized: bool = False, min_side: Optional[int] = None):
        parameters = {"score_threshold": _number(score_threshold), "normalized": "true" if normalized else "false"}
        if skeleton:
            parameters["skeleton"] = ",".join(f"{int(a)}-{int(b)}" for a, b in skeleton)
        super().__init__("keypoints", parameters, min_side)


class Heatmap(RendererSpec):
    """Values after the image: a heatmap [B, h, w] or [B, 1, h, w]."""

    def __init__(self, alpha: float = 0.5, colormap: str = "jet", value_range: Optional[Tuple[float, float]] = None,
                 min_side: Optional[int] = None):
        parameters = {"alpha": _number(alpha), "colormap": colormap}
        if value_range is not None:
            parameters["range"] = f"{_number(value_range[0])},{_number(value_range[1])}"
        super().__init__("heatmap", parameters, min_side)


class TorchScriptRenderer:
    """Marks a module that renders one image (its values in, uint8 [H, W, 3] out) as the drawing
    of a visualization brick in the plain-dict collection form:
    `{"module": TorchScriptRenderer(MyDrawing()), "kind": "VISUALIZATION", ...}`. In the
    torchbricks form, pass the module itself as the brick's callable."""

    renderer = TORCHSCRIPT

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, *values: Any) -> Any:
        return self.module(*values)


@dataclass(frozen=True)
class EncodedImage:
    """An `input_specs` value: the input is sent as JPEG/PNG bytes and decoded by the server to
    uint8 [B, 3, H, W] RGB, resized to height x width when both are given."""

    height: Optional[int] = None
    width: Optional[int] = None

    def __post_init__(self) -> None:
        if (self.height is None) != (self.width is None):
            raise ValueError("EncodedImage: give both height and width, or neither")
        if self.height is not None and (self.height < 1 or self.width < 1):
            raise ValueError("EncodedImage: height and width must be positive")
