"""Exporting visualization bricks and encoded image inputs: built-in renderer specs, scriptable
renderer modules, the error for drawing code the server cannot run, and the encoded-image
declaration with its PNG reference inputs."""
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import readme_models
from readme_models import brick
from package_helpers import flat_bricks
from torchbricks_export import EncodedImage, ExportError, export_brick_collection, load_reference, renderers

README_INPUTS = {"input_image": torch.zeros((2, 3, 100, 200)), "target": torch.tensor([0, 1], dtype=torch.int64)}


class VisualizeImageClassification:
    """The README's pillow-based drawing callable (plain Python: not exportable)."""

    def __init__(self, class_names: list) -> None:
        self.class_names = class_names

    def __call__(self, input_image: np.ndarray, target_prediction: np.ndarray):
        return input_image


class DictRenderer(nn.Module):
    """Does not script (a dict of lambdas)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = {"id": lambda t: t}

    def forward(self, image: Tensor) -> Tensor:
        return self.ops["id"](image)


class FloatRenderer(nn.Module):
    """Scripts, but returns float instead of uint8."""

    def forward(self, image: Tensor) -> Tensor:
        return image


def visualizer(callable, input_names=("input_image", "target"), output_names=("visualization",), name="visualizer"):
    """A collection of one visualization brick (the exporter's dict form) drawing with `callable`:
    a renderer spec, a module that renders one image, or plain Python (refused)."""
    if isinstance(callable, nn.Module):
        callable = renderers.TorchScriptRenderer(callable)
    return {name: brick(callable, list(input_names), list(output_names), kind="VISUALIZATION")}


def readme_visualizer(callable):
    return visualizer(callable)


def test_builtin_renderer_exports_as_a_visualizer_without_module(tmp_path, parse_bricks):
    version = export_brick_collection(readme_visualizer(renderers.ImageClassification(class_names=["cat", "dog"])),
                                      tmp_path / "readme_viz" / "1", example_inputs=README_INPUTS)
    brick = flat_bricks(parse_bricks(version))["visualizer"]
    assert brick.kind == 5  # VISUALIZATION
    assert list(brick.alive_stages) == [4]  # INFERENCE only, torchbricks' default
    assert brick.module_file == ""
    assert brick.visualizer.renderer == "classification"
    assert dict(brick.visualizer.parameters) == {"class_names": "cat,dog", "top_k": "1"}
    assert brick.module_type == "ImageClassification"


def test_scriptable_module_exports_as_a_torchscript_renderer(tmp_path, parse_bricks):
    collection = readme_models.renderer_gallery()
    version = export_brick_collection(collection, tmp_path / "gallery" / "1",
                                      example_inputs=readme_models.renderer_gallery_examples())
    brick = flat_bricks(parse_bricks(version))["draw/custom"]
    assert brick.visualizer.renderer == "torchscript"
    assert (version / brick.module_file).is_file()
    module = torch.jit.load(str(version / brick.module_file))
    drawing = module(torch.full((10, 20, 3), 0.5), torch.tensor([0.5, 0.25]))
    assert drawing.dtype == torch.uint8 and drawing.shape == (10, 20, 3)
    assert drawing[0, :10].eq(255).all() and drawing[0, 10:].eq(128).all()
    # Drawings are not part of the reference: nothing in Python to compare them with.
    _, _, outputs = load_reference(version / "reference" / "INFERENCE.pt")
    assert sorted(outputs) == ["brightness"]


def test_plain_python_drawing_names_the_brick_and_the_built_in_alternative(tmp_path):
    with pytest.raises(ExportError) as error:
        export_brick_collection(readme_visualizer(VisualizeImageClassification(["cat", "dog"])),
                                tmp_path / "m" / "1", example_inputs=README_INPUTS)
    message = str(error.value)
    assert "'visualizer'" in message and "VisualizeImageClassification" in message
    assert "renderers.ImageClassification" in message
    assert not (tmp_path / "m" / "1").exists()


def test_unscriptable_renderer_module_names_the_brick(tmp_path):
    with pytest.raises(ExportError) as error:
        export_brick_collection(visualizer(DictRenderer(), ["input_image"], ["drawing"], name="viz"),
                                tmp_path / "m" / "1", example_inputs=README_INPUTS)
    assert "'viz'" in str(error.value) and "cannot be scripted" in str(error.value)
    assert "built-in renderer" in str(error.value)


def test_renderer_module_must_return_uint8_images(tmp_path):
    with pytest.raises(ExportError) as error:
        export_brick_collection(visualizer(FloatRenderer(), ["input_image"], ["drawing"], name="viz"),
                                tmp_path / "m" / "1", example_inputs=README_INPUTS)
    assert "'viz'" in str(error.value) and "uint8 [H, W, 3]" in str(error.value)


def test_visualization_needs_exactly_one_output_name(tmp_path):
    with pytest.raises(ExportError, match="exactly one output name"):
        export_brick_collection(visualizer(renderers.Heatmap(), ["input_image", "heat"], ["a", "b"], name="viz"),
                                tmp_path / "m" / "1")


def test_renderer_specs_check_their_arguments():
    with pytest.raises(ValueError, match="class names may not contain"):
        renderers.ImageClassification(class_names=["a,b"])
    with pytest.raises(ValueError, match="unknown renderer"):
        renderers.RendererSpec("sketch")
    with pytest.raises(ValueError):
        EncodedImage(height=10)
    spec = renderers.ObjectDetection(class_names=["car"], score_threshold=0.25, normalized=True, min_side=0)
    assert spec.parameters == {"class_names": "car", "score_threshold": "0.25", "normalized": "true", "min_side": "0"}
    # In Python a spec passes the image through, channels last and uint8.
    drawn = renderers.ImageClassification()(np.full((4, 6, 3), 0.5, dtype=np.float32), np.int64(1))
    assert drawn.dtype == np.uint8 and drawn.shape == (4, 6, 3) and (drawn == 128).all()


def test_encoded_image_input_is_declared_and_referenced_as_png_files(tmp_path, parse_bricks):
    photos = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    version = export_brick_collection(readme_models.vision_classifier(), tmp_path / "vision" / "1",
                                      example_inputs={"image": photos}, input_specs={"image": EncodedImage(64, 64)})
    (declared,) = parse_bricks(version).inputs
    assert declared.data_type == 13  # TYPE_STRING: protocol BYTES
    assert list(declared.dims) == [-1]
    assert (declared.encoded_image.height, declared.encoded_image.width) == (64, 64)
    _, inputs, outputs = load_reference(version / "reference" / "INFERENCE.pt")
    rows = inputs["image"]
    assert rows.dtype == torch.uint8 and rows.dim() == 2 and rows.shape[0] == 2
    from torchvision.io import decode_png
    for row, photo in zip(rows, photos):
        length = int.from_bytes(bytes(row[:4].tolist()), "little")
        assert torch.equal(decode_png(row[4:4 + length].clone()), photo)  # lossless
    assert "visualization" not in outputs and "head/probabilities" in outputs


def test_encoded_image_examples_must_be_uint8_of_the_declared_size(tmp_path):
    for photos, needle in ((torch.rand(2, 3, 64, 64), "uint8 [B, 3, H, W]"),
                           (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "resizes to 64x64")):
        with pytest.raises(ExportError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            export_brick_collection(readme_models.vision_classifier(), tmp_path / "vision" / "1",
                                    example_inputs={"image": photos}, input_specs={"image": EncodedImage(64, 64)})
