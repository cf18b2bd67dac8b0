"""Builds the bundled example model repository with the Python exporter.

    .venv/bin/python examples/build_example_repository.py examples/repository
    .venv/bin/python examples/build_example_repository.py /tmp/aoti-repo --module-format aot_inductor
    .venv/bin/python examples/build_example_repository.py /tmp/fused-repo --module-format aot_inductor \
        --fused-stages INFERENCE
    .venv/bin/python examples/build_example_repository.py /tmp/one --models classifier

Writes three models (or those named by --models), each as version 1 with reference data:
  classifier           the torchbricks README's dummy preprocessor/backbone/head with a loss
  resnet18_classifier  the README's resnet: bag_of_bricks Preprocessor, resnet_to_brick
                       (torchvision resnet18, random weights) and ImageClassifier, with a loss
  scene_classifier     takes JPEG/PNG files, classifies them with a small convolutional net
                       (random weights) and, in INFERENCE, returns two drawings per image as
                       PNG files: the top-3 classes, and a heat map of where the features fire

The first two are built exactly as a torchbricks 0.4 user writes them, with the real
library, when it can be imported: the `torchbricks` installed in the project's Python
(requirements/python.txt), else the release folder $TORCHBRICKS_PATH (default:
../shared/torchbricks/0.4.2 beside this checkout). Without torchbricks (or its dependencies
typeguard and torchmetrics) the same models are built as plain nested dicts (the exporter's
own format), and the script says so.
"""
import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Tuple

import torch
import torchvision
from torch import Tensor, nn

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "clients" / "python" / "exporter"),
                str(Path(__file__).resolve().parent)]
from scene import CLASS_NAMES, scene  # noqa: E402
from torchbricks_export import EncodedImage, export_brick_collection, renderers  # noqa: E402

TRAINING_STAGES = ["TRAIN", "VALIDATION", "TEST"]


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


class Normalize(nn.Module):
    def forward(self, raw: Tensor) -> Tensor:
        return (raw - 0.5) / 0.25


class ResnetBackbone(nn.Module):
    """torchvision resnet18 without its classifier: [B, 3, H, W] -> [B, 512]."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18(weights=None)
        resnet.fc = nn.Identity()
        self.resnet = resnet

    def forward(self, images: Tensor) -> Tensor:
        return self.resnet(images)


class LinearClassifier(nn.Module):
    def __init__(self, n_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_features, num_classes)

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        logits = self.fc(features)
        probabilities = torch.softmax(logits, dim=1)
        return logits, probabilities, probabilities.argmax(dim=1)


class ToUnitFloat(nn.Module):
    """Decoded images (uint8, 0..255) to float in 0..1."""

    def forward(self, images: Tensor) -> Tensor:
        return images.float() / 255.0


class SmallConvNet(nn.Module):
    """Two strided 3x3 convolutions: [B, 3, H, W] -> a feature map [B, 32, H/4, W/4]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)


class PooledClassifier(nn.Module):
    def __init__(self, n_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_features, num_classes)

    def forward(self, feature_map: Tensor) -> Tuple[Tensor, Tensor]:
        logits = self.fc(feature_map.mean(dim=(2, 3)))
        return logits, torch.softmax(logits, dim=1)


class FeatureEnergy(nn.Module):
    """Where the features fire: the per-pixel norm of the feature map, [B, h, w]."""

    def forward(self, feature_map: Tensor) -> Tensor:
        return feature_map.norm(dim=1)


def scene_classifier():
    return {
        "preprocessor": {"module": ToUnitFloat(), "kind": "NOT_TRAINABLE",
                         "input_names": ["image"], "output_names": ["normalized"]},
        "backbone": {"module": SmallConvNet(), "input_names": ["normalized"], "output_names": ["features"]},
        "head": {"module": PooledClassifier(32, len(CLASS_NAMES)), "input_names": ["features"],
                 "output_names": ["logits", "probabilities"]},
        "saliency": {"module": FeatureEnergy(), "kind": "NOT_TRAINABLE",
                     "input_names": ["features"], "output_names": ["energy"]},
        # Alive in INFERENCE only (the default of visualization bricks): EXPORT returns tensors.
        "visualization": {
            "classification": {"module": renderers.ImageClassification(class_names=CLASS_NAMES, top_k=3),
                               "kind": "VISUALIZATION", "input_names": ["image", "probabilities"],
                               "output_names": ["./classification"]},
            "heatmap": {"module": renderers.Heatmap(alpha=0.5, colormap="turbo"), "kind": "VISUALIZATION",
                        "input_names": ["image", "energy"], "output_names": ["./heatmap"]},
        },
    }


def classifier():
    return {
        "preprocessor": {"module": PreprocessorDummy(), "kind": "NOT_TRAINABLE",
                         "input_names": ["raw_images"], "output_names": ["processed"]},
        "backbone": {"module": TinyModel(3, 10), "input_names": ["processed"],
                     "output_names": ["embedding"]},
        "head": {"module": ClassifierDummy(3, 10), "input_names": ["embedding"],
                 "output_names": ["logits", "softmaxed"]},
        "loss": {"module": nn.CrossEntropyLoss(), "kind": "LOSS",
                 "input_names": ["logits", "targets"], "output_names": ["loss_ce"],
                 "alive_stages": TRAINING_STAGES},
    }


def resnet18_classifier(num_classes: int = 10):
    return {
        "preprocessor": {"module": Normalize(), "kind": "NOT_TRAINABLE",
                         "input_names": ["raw"], "output_names": ["normalized"]},
        "backbone": {"module": ResnetBackbone(), "input_names": ["normalized"],
                     "output_names": ["features"]},
        "head": {"module": LinearClassifier(512, num_classes), "input_names": ["features"],
                 "output_names": ["logits", "probabilities", "class_prediction"]},
        "loss": {"module": nn.CrossEntropyLoss(), "kind": "LOSS",
                 "input_names": ["logits", "targets"], "output_names": ["loss_ce"]},
    }


# Serving configs, tuned on a 2-core machine (docs/PERFORMANCE.md). The classifier's 1x1
# convolution falls off a cliff in libtorch 1.13's MKL-DNN path at batch 16, so it batches
# up to 8; resnet18 gains from batches and from a second instance, and the fair-share
# policy gives the two instances even batches under closed-loop load.
CONFIGS = {
    "classifier": """max_batch_size: 8
instance_group { kind: KIND_CPU count: 1 intra_op_threads: 1 }
""",
    "resnet18_classifier": """max_batch_size: 32
dynamic_batching { max_queue_delay_microseconds: 10000 }
instance_group { kind: KIND_CPU count: 2 intra_op_threads: 1 }
parameters { key: "batching_policy" value: "fair_share" }
""",
    "scene_classifier": """max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 2000 }
""",
}


def import_torchbricks() -> bool:
    """Makes the real torchbricks importable (see the module docstring); False when it is not."""
    if importlib.util.find_spec("torchbricks") is None:
        checkout = Path(__file__).resolve().parents[1]
        folder = Path(os.environ.get("TORCHBRICKS_PATH", checkout.parent / "shared" / "torchbricks" / "0.4.2"))
        if not (folder / "torchbricks").is_dir():
            return False
        sys.path.insert(0, str(folder))
    try:
        import torchbricks.brick_collection  # noqa: F401
    except ImportError as error:
        print(f"torchbricks found but not importable ({error}); building plain dicts")
        return False
    return True


def torchbricks_classifier():
    """The torchbricks README's tagged example (Concept 2), with the real library."""
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickLoss, BrickNotTrainable, BrickTrainable
    return BrickCollection({
        "preprocessor": BrickNotTrainable(PreprocessorDummy(), input_names=["raw_images"], output_names=["processed"],
                                          tags="MODEL"),
        "backbone": BrickTrainable(TinyModel(n_channels=3, n_features=10), input_names=["processed"],
                                   output_names=["embedding"], tags="MODEL"),
        "head": BrickTrainable(ClassifierDummy(num_classes=3, in_features=10), input_names=["embedding"],
                               output_names=["logits", "softmaxed"], tags="MODEL"),
        "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"],
                          tags="LOSS"),
    })


def torchbricks_resnet18_classifier(num_classes: int = 10):
    """The torchbricks README's resnet example (bag_of_bricks), with the real library."""
    from torchbricks.bag_of_bricks.backbones import resnet_to_brick
    from torchbricks.bag_of_bricks.image_classification import ImageClassifier
    from torchbricks.bag_of_bricks.preprocessors import Preprocessor
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickLoss, BrickNotTrainable, BrickTrainable
    resnet = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    resnet_brick = resnet_to_brick(resnet=resnet, input_name="normalized", output_name="features")
    n_features = resnet_brick.model.n_backbone_features
    return BrickCollection({
        "preprocessor": BrickNotTrainable(Preprocessor(), input_names=["raw"], output_names=["normalized"]),
        "backbone": resnet_brick,
        "head": BrickTrainable(ImageClassifier(num_classes=num_classes, n_features=n_features),
                               input_names=["features"], output_names=["logits", "probabilities", "class_prediction"]),
        "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"]),
    }).eval()


# Bricks of the examples that torch.export cannot take, left in TorchScript in an AOTInductor
# repository: torchbricks' Preprocessor normalizes with torchvision, which branches on
# `(std == 0).any()`, a data-dependent condition.
KEEP_TORCHSCRIPT = {"resnet18_classifier": ["preprocessor"]}


def format_options(model: str, module_format: str, compiled_max_batch: int = 0, fused_stages: tuple = ()) -> dict:
    """export_brick_collection's arguments for `module_format`: for AOTInductor, the batch range
    compiled is `compiled_max_batch` or else the model's max_batch_size, the bricks listed in
    KEEP_TORCHSCRIPT stay, and the stages in `fused_stages` are compiled whole into one program
    each (module_format aot_inductor only)."""
    if module_format == "torchscript":
        if fused_stages:
            raise SystemExit("--fused-stages needs --module-format aot_inductor")
        return {}
    max_batch_size = compiled_max_batch or int(re.search(r"max_batch_size: (\d+)", CONFIGS[model]).group(1))
    return {"module_format": module_format, "max_batch_size": max_batch_size,
            "keep_torchscript": KEEP_TORCHSCRIPT.get(model, []), "fused_stages": list(fused_stages)}


def main(repository: Path, module_format: str = "torchscript", compiled_max_batch: int = 0,
         models: tuple = tuple(CONFIGS), fused_stages: tuple = ()) -> None:
    torch.manual_seed(0)
    real = import_torchbricks()
    if {"classifier", "resnet18_classifier"} & set(models):
        print("building classifier and resnet18_classifier with " +
              ("the real torchbricks" if real else "plain dicts (torchbricks is not importable)"))
    # Each model's weights and examples are drawn in this order whichever models are written,
    # so a model is the same in a repository of all three and in one of it alone.
    images = torch.rand(2, 3, 100, 200)
    targets = torch.tensor([0, 2])
    if "classifier" in models:
        export_brick_collection(
            torchbricks_classifier() if real else classifier(), repository / "classifier" / "1",
            example_inputs={"TRAIN": {"raw_images": images, "targets": targets},
                            "INFERENCE": {"raw_images": images}, "EXPORT": {"raw_images": images}},
            **format_options("classifier", module_format, compiled_max_batch, fused_stages))
    small = torch.rand(2, 3, 32, 32)
    if "resnet18_classifier" in models:
        export_brick_collection(
            torchbricks_resnet18_classifier() if real else resnet18_classifier(),
            repository / "resnet18_classifier" / "1",
            example_inputs={"TRAIN": {"raw": small, "targets": targets},
                            "INFERENCE": {"raw": small}, "EXPORT": {"raw": small}},
            **format_options("resnet18_classifier", module_format, compiled_max_batch, fused_stages))
    if "scene_classifier" in models:
        torch.manual_seed(0)
        scenes = torch.stack([torch.from_numpy(scene(224, 224, seed)[0]).permute(2, 0, 1) for seed in (1, 2)])
        export_brick_collection(
            scene_classifier(), repository / "scene_classifier" / "1",
            example_inputs={"INFERENCE": {"image": scenes}, "EXPORT": {"image": scenes}},
            input_specs={"image": EncodedImage(224, 224)},
            **format_options("scene_classifier", module_format, compiled_max_batch, fused_stages))
    for model in models:
        (repository / model / "config.pbtxt").write_text(CONFIGS[model])
    print(f"example repository written to {repository}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", type=Path, nargs="?", default=Path("examples/repository"))
    parser.add_argument("--module-format", choices=["torchscript", "aot_inductor"], default="torchscript",
                        help="how the bricks' modules are stored (aot_inductor: compiled ahead of time, "
                             "about 20 s per brick on two cores)")
    parser.add_argument("--compiled-max-batch", type=int, default=0,
                        help="with aot_inductor: the largest batch compiled (default: each model's max_batch_size)")
    parser.add_argument("--models", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="the models to write (default: all three)")
    parser.add_argument("--fused-stages", nargs="+", default=[], choices=["INFERENCE", "EXPORT"],
                        help="with aot_inductor: stages whose compiled bricks become one program each "
                             "(docs/PACKAGE_FORMAT.md, fused stages)")
    arguments = parser.parse_args()
    main(arguments.repository, arguments.module_format, arguments.compiled_max_batch, tuple(arguments.models),
         tuple(arguments.fused_stages))
