"""Builds the bundled example model repository with the Python exporter.

    /usr/bin/python3 examples/build_example_repository.py examples/repository

Writes two models, each as version 1 with reference data for INFERENCE, EXPORT and TRAIN:
  classifier           the torchbricks README's dummy preprocessor/backbone/head with a loss
  resnet18_classifier  a torchvision resnet18 backbone (random weights) with a linear head
The collections are plain nested dicts, the form that needs no torchbricks install; a
torchbricks BrickCollection exports the same way.
"""
import sys
from pathlib import Path
from typing import Tuple

import torch
import torchvision
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
from torchbricks_serve import export_brick_collection  # noqa: E402

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
# up to 8; resnet18 gains from batches and from a second instance.
CONFIGS = {
    "classifier": """max_batch_size: 8
instance_group { kind: KIND_CPU count: 1 intra_op_threads: 1 }
""",
    "resnet18_classifier": """max_batch_size: 32
dynamic_batching { preferred_batch_size: 8 max_queue_delay_microseconds: 2000 }
instance_group { kind: KIND_CPU count: 2 intra_op_threads: 1 }
""",
}


def main(repository: Path) -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 100, 200)
    targets = torch.tensor([0, 2])
    export_brick_collection(
        classifier(), repository / "classifier" / "1",
        example_inputs={"TRAIN": {"raw_images": images, "targets": targets},
                        "INFERENCE": {"raw_images": images}, "EXPORT": {"raw_images": images}})
    small = torch.rand(2, 3, 32, 32)
    export_brick_collection(
        resnet18_classifier(), repository / "resnet18_classifier" / "1",
        example_inputs={"TRAIN": {"raw": small, "targets": targets},
                        "INFERENCE": {"raw": small}, "EXPORT": {"raw": small}})
    for model, config in CONFIGS.items():
        (repository / model / "config.pbtxt").write_text(config)
    print(f"example repository written to {repository}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/repository"))
