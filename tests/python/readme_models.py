"""The torchbricks README's modules, written to be scriptable, and builders of its collections
for the fixtures and server tests.

Each builder seeds torch so that weights are deterministic, and returns the collection in the
exporter's own plain-dict form (`{"module": ..., "input_names": ..., "kind": ...}`), which
needs no torchbricks install. What the real torchbricks builds is tested against the library
itself in test_real_torchbricks.py. Extra modules at the end serve the fixtures.
"""
from typing import Any, Dict, List, Tuple

import torch
import torchvision
from torch import Tensor, nn

Brick = Dict[str, Any]
TRAINING_STAGES = ["TRAIN", "VALIDATION", "TEST"]


def brick(module: Any, input_names: List[str], output_names: List[str], kind: str = "TRAINABLE",
          alive_stages: Any = None) -> Brick:
    """One brick in the exporter's dict form; `alive_stages` None means the kind's default."""
    spec = {"module": module, "input_names": input_names, "output_names": output_names, "kind": kind}
    if alive_stages is not None:
        spec["alive_stages"] = alive_stages
    return spec

SEED = 17


class PreprocessorDummy(nn.Module):
    def forward(self, raw_input: Tensor) -> Tensor:
        return raw_input / 2


class TinyModel(nn.Module):
    def __init__(self, n_channels: int, n_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_channels, n_features, kernel_size=1)

    def forward(self, tensor: Tensor) -> Tensor:
        return self.conv(tensor)


class ClassifierDummy(nn.Module):
    def __init__(self, num_classes: int, in_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, tensor: Tensor) -> Tuple[Tensor, Tensor]:
        logits = self.fc(torch.flatten(self.avgpool(tensor), start_dim=1))
        return logits, self.softmax(logits)


class Preprocessor(nn.Module):
    """The README's stage-aware preprocessor: resized to 50x100 when exporting, then halved."""

    def forward(self, input_image: Tensor, stage: str) -> Tensor:
        if stage == "EXPORT":
            input_image = torch.nn.functional.interpolate(input_image, size=(50, 100))
        return input_image / 2


class NormalizePreprocessor(nn.Module):
    """Bag-of-bricks style preprocessor: per-channel standardisation with ImageNet statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, raw: Tensor) -> Tensor:
        return (raw - self.mean) / self.std


class MyNewPostProcessor(nn.Module):
    def forward(self, named_inputs: Dict[str, Tensor]) -> Tensor:
        assert "raw" in named_inputs
        assert "embedding" in named_inputs
        return named_inputs["embedding"]


class ImageClassifier(nn.Module):
    def __init__(self, num_classes: int, n_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_features, num_classes)

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        logits = self.fc(features)
        probabilities = torch.softmax(logits, dim=1)
        return logits, probabilities, probabilities.argmax(dim=1)


class BackboneResnet(nn.Module):
    """A torchvision resnet without its classifier: images [B, 3, H, W] -> pooled features [B, C]."""

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.n_backbone_features = resnet.fc.in_features
        self.body = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                                  resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4, resnet.avgpool)

    def forward(self, images: Tensor) -> Tensor:
        return torch.flatten(self.body(images), start_dim=1)


class TinyBackbone(nn.Module):
    """A fast stand-in for a resnet backbone: 1x1 convolution, ReLU and global average pooling."""

    def __init__(self, n_channels: int, n_features: int) -> None:
        super().__init__()
        self.n_backbone_features = n_features
        self.conv = nn.Conv2d(n_channels, n_features, kernel_size=1)

    def forward(self, images: Tensor) -> Tensor:
        return torch.relu(self.conv(images)).mean(dim=(2, 3))


class Accuracy(nn.Module):
    """A scriptable batch accuracy, standing in for torchmetrics' MulticlassAccuracy."""

    def forward(self, class_prediction: Tensor, targets: Tensor) -> Tensor:
        return (class_prediction == targets).float().mean()


def resnet_to_brick(resnet: torchvision.models.ResNet, input_name: str, output_name: str) -> Brick:
    return brick(BackboneResnet(resnet), input_names=[input_name], output_names=[output_name])


def readme_dummy() -> Dict[str, Any]:
    torch.manual_seed(SEED)
    return dict({
        "preprocessor": brick(PreprocessorDummy(), kind="NOT_TRAINABLE", input_names=["raw_images"], output_names=["processed"]),
        "backbone": brick(TinyModel(n_channels=3, n_features=10), input_names=["processed"],
                                   output_names=["embedding"]),
        "head": brick(ClassifierDummy(num_classes=3, in_features=10), input_names=["embedding"],
                               output_names=["logits", "softmaxed"]),
    })


def readme_with_loss(num_classes: int = 3) -> Dict[str, Any]:
    torch.manual_seed(SEED)
    return dict({
        "preprocessor": brick(PreprocessorDummy(), kind="NOT_TRAINABLE", input_names=["raw_images"], output_names=["processed"],
                                          alive_stages="all"),
        "backbone": brick(TinyModel(n_channels=num_classes, n_features=10), input_names=["processed"],
                                   output_names=["embedding"], alive_stages="all"),
        "head": brick(ClassifierDummy(num_classes=num_classes, in_features=10), input_names=["embedding"],
                               output_names=["logits", "softmaxed"], alive_stages="all"),
        "loss": brick(kind="LOSS", module=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"],
                          alive_stages=TRAINING_STAGES),
    })


def create_image_classification_head(num_classes: int, in_channels: int, features_name: str,
                                     targets_name: str) -> Dict[str, nn.Module]:
    return {
        "classify": brick(ImageClassifier(num_classes=num_classes, n_features=in_channels),
                                   input_names=[features_name],
                                   output_names=["./logits", "./probabilities", "./class_prediction"]),
        "accuracy": brick(kind="METRIC", output_names=[], module=Accuracy(), input_names=["./class_prediction", targets_name]),
        "loss": brick(kind="LOSS", module=nn.CrossEntropyLoss(), input_names=["./logits", targets_name],
                          output_names=["./loss_ce"]),
    }


def readme_nested_heads(backbone: str = "tiny") -> Dict[str, Any]:
    """Two classification heads on one backbone; `backbone` is "tiny" (fast) or "resnet18"."""
    torch.manual_seed(SEED)
    if backbone == "resnet18":
        backbone_brick = resnet_to_brick(torchvision.models.resnet18(weights=None, num_classes=10),
                                         input_name="normalized", output_name="features")
    else:
        backbone_brick = brick(TinyBackbone(n_channels=3, n_features=16), input_names=["normalized"],
                                        output_names=["features"])
    n_features = backbone_brick["module"].n_backbone_features
    return dict({
        "preprocessor": brick(NormalizePreprocessor(), kind="NOT_TRAINABLE", input_names=["raw"], output_names=["normalized"]),
        "backbone": backbone_brick,
        "head0": create_image_classification_head(3, n_features, features_name="features", targets_name="targets0"),
        "head1": create_image_classification_head(5, n_features, features_name="features", targets_name="targets1"),
    })


def readme_all_input() -> Dict[str, Any]:
    torch.manual_seed(SEED)
    return dict({
        "backbone": brick(TinyModel(n_channels=3, n_features=10), input_names=["raw"],
                                   output_names=["embedding"]),
        "post_processor": brick(MyNewPostProcessor(), kind="NOT_TRAINABLE", input_names=["__all__"],
                                            output_names=["postprocessed"]),
    })


def readme_stage_preprocessor() -> Dict[str, Any]:
    torch.manual_seed(SEED)
    return dict({
        "preprocessor": brick(Preprocessor(), kind="NOT_TRAINABLE", input_names=["raw", "stage"], output_names=["processed"]),
    })


def resnet18_classifier(num_classes: int = 10) -> Dict[str, Any]:
    torch.manual_seed(SEED)
    resnet_brick = resnet_to_brick(torchvision.models.resnet18(weights=None, num_classes=num_classes),
                                   input_name="normalized", output_name="features")
    return dict({
        "preprocessor": brick(NormalizePreprocessor(), kind="NOT_TRAINABLE", input_names=["raw"], output_names=["normalized"]),
        "backbone": resnet_brick,
        "head": brick(ImageClassifier(num_classes, n_features=resnet_brick["module"].n_backbone_features),
                               input_names=["features"], output_names=["logits", "probabilities", "class_prediction"]),
        "accuracy": brick(kind="METRIC", module=Accuracy(), input_names=["class_prediction", "targets"],
                                      output_names=["accuracy"]),
        "loss": brick(kind="LOSS", module=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
    })


class SplitHalves(nn.Module):
    """Returns a Dict[str, Tensor] (served flattened as "<output>/<key>")."""

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        width = images.shape[-1] // 2
        return {"left": images[..., :width], "right": images[..., width:]}


class CombineHalves(nn.Module):
    def forward(self, halves: Dict[str, Tensor]) -> Tensor:
        return halves["left"] - halves["right"]


def dict_output() -> Dict[str, Any]:
    torch.manual_seed(SEED)
    return dict({
        "split": brick(SplitHalves(), kind="NOT_TRAINABLE", input_names=["images"], output_names=["halves"]),
        "combine": brick(CombineHalves(), kind="NOT_TRAINABLE", input_names=["halves"], output_names=["difference"]),
    })


class TableLookup(nn.Module):
    """Looks rows up in a fixed table: an index past the table fails inside libtorch, so a
    batch with one bad member fails while its other members succeed alone."""

    def __init__(self, rows: int = 10) -> None:
        super().__init__()
        self.register_buffer("table", torch.arange(rows * 2, dtype=torch.float32).reshape(rows, 2))

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.table[index.reshape(-1)]


def lookup_table() -> Dict[str, Any]:
    return dict({
        "lookup": brick(TableLookup(), kind="NOT_TRAINABLE", input_names=["index"], output_names=["row"]),
    })


class ScaledDifference(nn.Module):
    def forward(self, a: Tensor, b: Tensor, scale: float = 2.0) -> Tensor:
        return a - b * scale


def keyword_inputs() -> Dict[str, Any]:
    """input_names as a dict {argument: value}, in another order than forward()'s parameters:
    the module is called as ScaledDifference(b=x, a=y), `scale` left at its default."""
    return {"difference": {"module": ScaledDifference(), "input_names": {"b": "x", "a": "y"},
                           "output_names": ["d"]}}


class StageOffset(nn.Module):
    """Takes the stage but does not script (a dict of lambdas), so it is traced once per stage."""

    def __init__(self) -> None:
        super().__init__()
        self.offsets = {"EXPORT": lambda t: t + 100.0}

    def forward(self, x: Tensor, stage: str) -> Tensor:
        return self.offsets.get(stage, lambda t: t)(x) * 2


def stage_traced() -> Dict[str, Any]:
    return {"offset": brick(StageOffset(), ["x", "stage"], ["y"], kind="NOT_TRAINABLE")}


# --- Visualization fixtures ---------------------------------------------------------------

GALLERY_CLASSES = ["cat", "dog", "bird"]


class MeanBrightness(nn.Module):
    """A model brick alive in every stage, so EXPORT has something to run."""

    def forward(self, image: Tensor) -> Tensor:
        return image.float().mean(dim=(1, 2, 3))


class ScoreBar(nn.Module):
    """A TorchScript renderer: one image [H, W, 3] in 0..1 and its scores [K] in; the image as
    uint8 with a white bar along the top whose length is the top score, out."""

    def forward(self, image: Tensor, scores: Tensor) -> Tensor:
        drawing = (image * 255.0).round().clamp(0, 255).to(torch.uint8).contiguous()
        length = int(float(scores.max()) * drawing.shape[1])
        drawing[:4, :length] = 255
        return drawing


def renderer_gallery() -> Dict[str, Any]:
    """One visualization brick per built-in renderer plus a TorchScript one, each drawing
    declared inputs, so tests choose exactly what is drawn."""
    from torchbricks_export import renderers

    def draw(spec, *inputs: str) -> Brick:
        if isinstance(spec, renderers.RendererSpec):
            name = spec.renderer
        else:
            name, spec = "custom", renderers.TorchScriptRenderer(spec)
        return brick(spec, kind="VISUALIZATION", input_names=["image", *inputs], output_names=[f"./{name}"])

    return dict({
        "brightness": brick(MeanBrightness(), kind="NOT_TRAINABLE", input_names=["image"], output_names=["brightness"]),
        "draw": {
            "classification": draw(renderers.ImageClassification(class_names=GALLERY_CLASSES, top_k=2),
                                   "class_scores"),
            "segmentation": draw(renderers.SemanticSegmentation(alpha=0.6, class_names=["background", *GALLERY_CLASSES]),
                                 "mask"),
            "detection": draw(renderers.ObjectDetection(class_names=GALLERY_CLASSES, score_threshold=0.3),
                              "boxes", "box_scores", "box_labels"),
            "keypoints": draw(renderers.Keypoints(score_threshold=0.5, skeleton=[(0, 1), (1, 2), (2, 3)]),
                              "keypoints"),
            "heatmap": draw(renderers.Heatmap(alpha=0.5, colormap="jet"), "heat"),
            "custom": draw(ScoreBar(), "class_scores"),
        },
    })


# Any image size and any number of boxes or keypoints.
RENDERER_GALLERY_SPECS = {
    "image": (torch.float32, (-1, 3, -1, -1)), "class_scores": (torch.float32, (-1, 3)),
    "mask": (torch.int64, (-1, -1, -1)), "boxes": (torch.float32, (-1, -1, 4)),
    "box_scores": (torch.float32, (-1, -1)), "box_labels": (torch.int64, (-1, -1)),
    "keypoints": (torch.float32, (-1, -1, 3)), "heat": (torch.float32, (-1, -1, -1)),
}


def renderer_gallery_examples(batch: int = 2, height: int = 120, width: int = 160) -> Dict[str, Tensor]:
    """Inputs for every brick of renderer_gallery(): a plain image and predictions in its corners."""
    image = torch.full((batch, 3, height, width), 0.5)
    mask = torch.zeros(batch, height // 2, width // 2, dtype=torch.int64)
    mask[:, : height // 4, : width // 4] = 1
    heat = torch.zeros(batch, height // 4, width // 4)
    heat[:, :4, :4] = 1.0
    return {
        "image": image,
        "class_scores": torch.tensor([[0.1, 0.7, 0.2]]).repeat(batch, 1),
        "mask": mask,
        "boxes": torch.tensor([[[4.0, 4.0, 40.0, 30.0], [0.0, 0.0, 0.0, 0.0]]]).repeat(batch, 1, 1),
        "box_scores": torch.tensor([[0.9, 0.0]]).repeat(batch, 1),
        "box_labels": torch.tensor([[1, -1]]).repeat(batch, 1),
        "keypoints": torch.tensor([[[10.0, 10.0, 1.0], [20.0, 12.0, 1.0], [30.0, 16.0, 1.0], [36.0, 24.0, 1.0]]])
        .repeat(batch, 1, 1),
        "heat": heat,
    }


class ToUnitFloat(nn.Module):
    """uint8 images (decoded by the server) to float in 0..1."""

    def forward(self, image: Tensor) -> Tensor:
        return image.float() / 255.0


def vision_classifier() -> Dict[str, Any]:
    """Encoded JPEG/PNG input, a tiny classifier, an unrelated second head and a visualization of
    the first head's prediction drawn on the decoded image."""
    from torchbricks_export import renderers

    torch.manual_seed(SEED)
    return dict({
        "preprocessor": brick(ToUnitFloat(), kind="NOT_TRAINABLE", input_names=["image"], output_names=["processed"]),
        "backbone": brick(TinyBackbone(3, 16), input_names=["processed"], output_names=["features"]),
        "head": {"classify": brick(ImageClassifier(num_classes=3, n_features=16), input_names=["features"],
                                            output_names=["./logits", "./probabilities", "./class_prediction"])},
        "brightness": brick(MeanBrightness(), kind="NOT_TRAINABLE", input_names=["processed"], output_names=["brightness"]),
        "visualizer": brick(renderers.ImageClassification(class_names=GALLERY_CLASSES), kind="VISUALIZATION",
                            input_names=["image", "head/probabilities"], output_names=["visualization"]),
    })
