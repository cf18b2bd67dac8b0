"""Every example of the torchbricks READMEs (0.1.0: the notebook in ../shared; 0.4.2: its
README.md) and every `bag_of_bricks` module, built with the real library, as test cases.

Each builder takes the imported release (real_torchbricks.release) and returns a Case: the
collection exactly as the README writes it (sizes made small), example inputs, and how to
run the library's own forward in a stage. Where a README example draws with plain Python
(PIL), the case uses a built-in renderer or a scriptable module instead, since the server
cannot run Python; the README's own callable is covered by an export-error test.
"""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torchvision
from torch import Tensor, nn

from torchbricks_export import renderers

SERVED = ("INFERENCE", "EXPORT")


def images(*shape: int, seed: int = 5) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def resized(value: Tensor, rows: int) -> Tensor:
    """`value` with `rows` rows: its rows repeated, floats scaled per row so that rows differ."""
    repeats = -(-rows // value.shape[0])
    out = value.repeat(repeats, *([1] * (value.dim() - 1)))[:rows].clone()
    if out.is_floating_point():
        out *= (1 + 0.01 * torch.arange(rows, dtype=out.dtype)).reshape(-1, *([1] * (value.dim() - 1)))
    return out


@dataclass
class Case:
    name: str
    collection: Any
    inputs: Dict[str, Tensor]                      # what the served stages take
    train_inputs: Optional[Dict[str, Tensor]] = None  # adds TRAIN reference data when given
    stage_tags: Optional[Dict[str, Any]] = None    # 0.4.2: passed to the exporter and forward
    input_specs: Optional[Dict[str, Any]] = None
    drawings: Tuple[str, ...] = ()                 # outputs that are PNGs per image
    # Bricks the library's forward leaves out here: a scriptable renderer module cannot take
    # the numpy images torchbricks hands it in Python (the server hands it tensors).
    library_skip: Tuple[str, ...] = ()
    stages: Tuple[str, ...] = SERVED               # the served stages in which a brick is alive

    def example_inputs(self) -> Dict[str, Dict[str, Tensor]]:
        stages = {stage: self.inputs for stage in self.stages}
        if self.train_inputs is not None:
            stages["TRAIN"] = self.train_inputs
        return stages


def library_forward(tb: Any, case: Case, stage: str, inputs: Dict[str, Tensor]) -> Dict[str, Any]:
    """The collection's own forward in `stage`: `stage=Stage.X` (0.1.0) or the stage's tags (0.4.2)."""
    collection = case.collection
    if case.library_skip:
        collection = type(collection)({name: brick for name, brick in collection.items() if name not in case.library_skip})
    with torch.no_grad():
        if tb.version == "0.1.0":
            from torchbricks.bricks import Stage
            return collection(named_inputs=dict(inputs), stage=Stage[stage])
        from torchbricks.brick_tags import DEFAULT_MODEL_STAGE_TAGS
        tags = (case.stage_tags or {}).get(stage, DEFAULT_MODEL_STAGE_TAGS[stage])
        return collection(named_inputs=dict(inputs), tags=set(tags))


# The README's dummy modules are identical in both releases (and in readme_models).
from readme_models import ClassifierDummy, PreprocessorDummy, TinyModel  # noqa: E402


class MyNewPostProcessor(torch.nn.Module):
    def forward(self, named_inputs: Dict[str, Any]):
        # Here `named_inputs` contains all intermediate tensors
        assert "raw" in named_inputs
        assert "embedding" in named_inputs
        return named_inputs["embedding"]


class DrawScore(nn.Module):
    """A scriptable renderer: one image [H, W, C] float and its class scores [K] in, a uint8
    [H, W, 3] picture out with a bar as long as the top score."""

    def forward(self, image: Tensor, scores: Tensor) -> Tensor:
        picture = (image.clamp(0, 1) * 255).to(torch.uint8)[:, :, :3].contiguous()
        length = int(float(scores.max()) * picture.shape[1])
        picture[:4, :length] = torch.tensor([255, 0, 0], dtype=torch.uint8)
        return picture


def _small_resnet18(num_classes: int) -> torchvision.models.ResNet:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def _common_cases(lib: Any) -> Dict[str, Callable[[], Case]]:
    """The README examples that read the same in both releases; `lib` holds the release's
    classes (BrickCollection, BrickTrainable, ..., bag_of_bricks' Preprocessor and friends)."""
    BrickCollection, BrickTrainable, BrickNotTrainable = lib.BrickCollection, lib.BrickTrainable, lib.BrickNotTrainable
    BrickLoss, BrickMetricSingle, MulticlassAccuracy = lib.BrickLoss, lib.BrickMetricSingle, lib.MulticlassAccuracy
    ImageClassifier, Preprocessor, resnet_to_brick = lib.ImageClassifier, lib.Preprocessor, lib.resnet_to_brick

    def readme_dummy() -> Case:
        bricks = {
            'preprocessor': BrickNotTrainable(PreprocessorDummy(), input_names=['raw_images'], output_names=['processed']),
            'backbone': BrickTrainable(TinyModel(n_channels=3, n_features=10), input_names=['processed'],
                                       output_names=['embedding']),
            'head': BrickTrainable(ClassifierDummy(num_classes=3, in_features=10), input_names=['embedding'],
                                   output_names=['logits', "softmaxed"]),
        }
        return Case("readme_dummy", BrickCollection(bricks), {"raw_images": images(2, 3, 100, 200)})

    def readme_resnet() -> Case:
        # Preprocessor (a __call__-only module), resnet_to_brick/BackboneResnet, ImageClassifier,
        # a torchmetrics metric (left out with a warning) and a loss.
        num_classes = 10
        resnet_brick = resnet_to_brick(resnet=_small_resnet18(num_classes), input_name='normalized',
                                       output_name='features')
        n_features = resnet_brick.model.n_backbone_features
        bricks = {
            'preprocessor': BrickNotTrainable(Preprocessor(), input_names=['raw'], output_names=['normalized']),
            'backbone': resnet_brick,
            'head': BrickTrainable(ImageClassifier(num_classes=num_classes, n_features=n_features),
                                   input_names=['features'], output_names=['logits', 'probabilities', 'class_prediction']),
            'accuracy': BrickMetricSingle(MulticlassAccuracy(num_classes=num_classes),
                                          input_names=['class_prediction', 'targets']),
            'loss': BrickLoss(model=nn.CrossEntropyLoss(), input_names=['logits', 'targets'], output_names=['loss_ce']),
        }
        raw = images(2, 3, 32, 32)
        return Case("readme_resnet", BrickCollection(bricks).eval(), {"raw": raw},
                    train_inputs={"raw": raw, "targets": torch.tensor([1, 7])})

    def readme_nested_heads() -> Case:
        def create_image_classification_head(num_classes, in_channels, features_name, targets_name):
            return {
                'classify': BrickTrainable(ImageClassifier(num_classes=num_classes, n_features=in_channels),
                                           input_names=[features_name],
                                           output_names=['./logits', './probabilities', './class_prediction']),
                'accuracy': BrickMetricSingle(MulticlassAccuracy(num_classes=num_classes),
                                              input_names=['./class_prediction', targets_name]),
                'loss': BrickLoss(model=nn.CrossEntropyLoss(), input_names=['./logits', targets_name],
                                  output_names=['./loss_ce']),
            }
        resnet_brick = resnet_to_brick(resnet=_small_resnet18(10), input_name='normalized', output_name='features')
        n_features = resnet_brick.model.n_backbone_features
        bricks = {
            'preprocessor': BrickNotTrainable(Preprocessor(), input_names=['raw'], output_names=['normalized']),
            'backbone': resnet_brick,
            'head0': create_image_classification_head(3, n_features, 'features', 'targets0'),
            'head1': create_image_classification_head(5, n_features, 'features', 'targets1'),
        }
        raw = images(2, 3, 32, 32)
        return Case("readme_nested_heads", BrickCollection(bricks).eval(), {"raw": raw},
                    train_inputs={"raw": raw, "targets0": torch.tensor([0, 2]), "targets1": torch.tensor([4, 1])})

    def readme_all_input() -> Case:
        bricks = {
            'backbone': BrickTrainable(TinyModel(n_channels=3, n_features=10), input_names=['raw'],
                                       output_names=['embedding']),
            'post_processor': BrickNotTrainable(MyNewPostProcessor(), input_names=['__all__'],
                                                output_names=["postprocessed"]),
        }
        return Case("readme_all_input", BrickCollection(bricks), {"raw": images(2, 3, 100, 200)})

    def keyword_inputs() -> Case:
        # input_names as a dict {argument: value}: torchbricks calls ImageClassifier(backbone_features=...).
        bricks = {
            'backbone': BrickTrainable(TinyModel(n_channels=3, n_features=8), input_names=['raw'],
                                       output_names=['features']),
            'head': BrickTrainable(ImageClassifier(num_classes=4, n_features=8),
                                   input_names={'backbone_features': 'features'},
                                   output_names=['logits', 'probabilities', 'class_prediction']),
        }
        return Case("keyword_inputs", BrickCollection(bricks), {"raw": images(2, 3, 16, 16)})

    return {builder.__name__: builder for builder in
            (readme_dummy, readme_resnet, readme_nested_heads, readme_all_input, keyword_inputs)}


# --- torchbricks 0.1.0 (the notebook) -------------------------------------------------------
def v010_cases() -> Dict[str, Callable[[], Case]]:
    from torchbricks.bag_of_bricks import ImageClassifier, LeNet5, Preprocessor, resnet_to_brick
    from torchbricks.brick_visualizer import BrickPerImageVisualization
    from torchbricks.bricks import (BrickCollection, BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable,
                                    Stage)
    from torchmetrics.classification import MulticlassAccuracy
    lib = SimpleNamespace(**locals())  # the release's classes, for the examples both READMEs share


    def readme_with_loss() -> Case:
        num_classes = 3
        bricks = {
            'preprocessor': BrickNotTrainable(PreprocessorDummy(), input_names=['raw_images'],
                                              output_names=['processed'], alive_stages="all"),
            'backbone': BrickTrainable(TinyModel(n_channels=num_classes, n_features=10), input_names=['processed'],
                                       output_names=['embedding'], alive_stages="all"),
            'head': BrickTrainable(ClassifierDummy(num_classes=num_classes, in_features=10), input_names=['embedding'],
                                   output_names=['logits', 'softmaxed'], alive_stages="all"),
            'loss': BrickLoss(model=nn.CrossEntropyLoss(), input_names=['logits', 'targets'], output_names=['loss_ce'],
                              alive_stages=[Stage.TRAIN, Stage.VALIDATION, Stage.TEST]),
        }
        raw = images(2, 3, 100, 200)
        return Case("readme_with_loss", BrickCollection(bricks), {"raw_images": raw},
                    train_inputs={"raw_images": raw, "targets": torch.tensor([0, 2])})




    def readme_stage() -> Case:
        class Preprocessor(torch.nn.Module):  # the notebook's own (its annotation `-> str` included)
            def forward(self, input_image: torch.Tensor, stage: Stage) -> str:
                if stage in [Stage.EXPORT]:
                    input_image = torch.nn.functional.interpolate(input_image, size=(50, 100))
                return input_image / 2
        collection = BrickCollection({
            "preprocessor": BrickNotTrainable(Preprocessor(), input_names=['raw', 'stage'], output_names=["processed"])
        })
        return Case("readme_stage", collection, {"raw": images(2, 3, 100, 200)})

    def readme_visualization() -> Case:
        bricks = {
            'visualizer': BrickPerImageVisualization(callable=renderers.ImageClassification(class_names=["cat", "dog"]),
                                                     input_names=["input_image", "target"],
                                                     output_names=["visualization"],
                                                     alive_stages=[Stage.INFERENCE]),
        }
        inputs = {'input_image': torch.zeros((2, 3, 100, 200)), 'target': torch.tensor([0, 1], dtype=torch.int64)}
        return Case("readme_visualization", BrickCollection(bricks), inputs, drawings=("visualization",),
                    stages=("INFERENCE",))

    def module_renderer() -> Case:
        bricks = {
            'head': BrickTrainable(ClassifierDummy(num_classes=3, in_features=3), input_names=['image'],
                                   output_names=['logits', 'scores']),
            'draw': BrickPerImageVisualization(callable=DrawScore(), input_names=["image", "scores"],
                                               output_names=["drawn"]),
        }
        return Case("module_renderer", BrickCollection(bricks), {"image": images(2, 3, 24, 32)}, drawings=("drawn",),
                    library_skip=("draw",))


    def lenet5() -> Case:
        torch.manual_seed(1)
        bricks = {'lenet': BrickTrainable(LeNet5(n_classes=10), input_names=['digits'], output_names=['logits', 'probs'])}
        return Case("lenet5", BrickCollection(bricks), {"digits": images(2, 1, 32, 32)})

    builders = _common_cases(lib)
    builders.update({builder.__name__: builder for builder in
                     (readme_with_loss, readme_stage, readme_visualization, module_renderer, lenet5)})
    return {name: builders[name] for name in CASE_NAMES["0.1.0"]}


# --- torchbricks 0.4.2 (its README.md and bag_of_bricks) ------------------------------------
def v042_cases() -> Dict[str, Callable[[], Case]]:
    from torchbricks.bag_of_bricks.backbones import BackboneResnet, create_backbone, resnet_to_brick
    from torchbricks.bag_of_bricks.brick_visualizer import BrickPerImageVisualization
    from torchbricks.bag_of_bricks.custom_metrics import ConcatenatePredictionAndTarget
    from torchbricks.bag_of_bricks.image_classification import ImageClassifier, create_image_classification_head
    from torchbricks.bag_of_bricks.preprocessors import Preprocessor
    from torchbricks.bag_of_bricks.task_utils import ImageClassificationInfo
    from torchbricks.brick_collection import BrickCollection
    from torchbricks.bricks import BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable
    from torchmetrics.classification import MulticlassAccuracy
    lib = SimpleNamespace(**locals())  # the release's classes, for the examples both READMEs share


    def readme_tags() -> Case:
        bricks = {
            "preprocessor": BrickNotTrainable(PreprocessorDummy(), input_names=["raw_images"], output_names=["processed"],
                                              tags="MODEL"),
            "backbone": BrickTrainable(TinyModel(n_channels=3, n_features=10), input_names=["processed"],
                                       output_names=["embedding"], tags="MODEL"),
            "head": BrickTrainable(ClassifierDummy(num_classes=3, in_features=10), input_names=["embedding"],
                                   output_names=["logits", "softmaxed"], tags="MODEL"),
            "loss": BrickLoss(model=nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["loss_ce"],
                              tags="LOSS"),
        }
        raw = images(2, 3, 100, 200)
        return Case("readme_tags", BrickCollection(bricks), {"raw_images": raw},
                    train_inputs={"raw_images": raw, "targets": torch.ones((2,), dtype=torch.int64)})



    def bag_of_bricks_classifier() -> Case:
        # create_backbone + Preprocessor(uint8_to_float32) + the library's
        # create_image_classification_head (its BrickMetrics left out with a warning), nested one
        # level, plus a custom metric and a relative name that climbs one level. One level, not
        # two: with the real typeguard, torchbricks 0.4.2 refuses a dict of dicts of bricks (a
        # nested BrickCollection fails its own `Dict[str, Union[dict, BrickInterface]]` check).
        task = ImageClassificationInfo.from_names(["cat", "dog", "bird"])
        backbone = create_backbone("resnet18", pretrained=False, small=True)
        head = create_image_classification_head(backbone.n_backbone_features, task_info=task, input_name="features")
        head["gather"] = BrickMetricSingle(ConcatenatePredictionAndTarget(), input_names=["./class_prediction", "label"])
        head["confidence"] = BrickNotTrainable(nn.Identity(), input_names=["./probabilities"],
                                               output_names=["../confidence"])
        bricks = {
            "preprocessor": BrickNotTrainable(Preprocessor(uint8_to_float32=True), input_names=["raw"],
                                              output_names=["normalized"]),
            "backbone": BrickTrainable(backbone, input_names=["normalized"], output_names=["features"]),
            "animals": head,
        }
        torch.manual_seed(2)
        raw = (images(2, 3, 16, 16) * 255).to(torch.uint8)
        return Case("bag_of_bricks_classifier", BrickCollection(bricks).eval(), {"raw": raw},
                    train_inputs={"raw": raw, "label": torch.tensor([0, 2])})

    def backbone_resnet() -> Case:
        bricks = {"backbone": BrickTrainable(BackboneResnet(_small_resnet18(5)), input_names=["image"],
                                             output_names=["features"])}
        return Case("backbone_resnet", BrickCollection(bricks).eval(), {"image": images(2, 3, 32, 32)})


    def readme_visualization() -> Case:
        bricks = {
            "visualizer": BrickPerImageVisualization(
                callable=renderers.ImageClassification(class_names=["cat", "dog"]),
                input_names=["input_image", "target"], output_names=["visualization"]),
        }
        inputs = {"input_image": torch.zeros((2, 3, 100, 200)), "target": torch.tensor([0, 1], dtype=torch.int64)}
        return Case("readme_visualization", BrickCollection(bricks), inputs,
                    stage_tags={"INFERENCE": {"MODEL", "VISUALIZATION"}}, drawings=("visualization",),
                    stages=("INFERENCE",))

    def module_renderer() -> Case:
        bricks = {
            "head": BrickTrainable(ClassifierDummy(num_classes=3, in_features=3), input_names=["image"],
                                   output_names=["logits", "scores"]),
            "draw": BrickPerImageVisualization(callable=DrawScore(), input_names={"image": "image", "scores": "scores"},
                                               output_names=["drawn"], tags={"MODEL"}),
        }
        return Case("module_renderer", BrickCollection(bricks), {"image": images(2, 3, 24, 32)}, drawings=("drawn",),
                    library_skip=("draw",))


    builders = _common_cases(lib)
    builders.update({builder.__name__: builder for builder in
                     (readme_tags, bag_of_bricks_classifier, backbone_resnet, readme_visualization, module_renderer)})
    return {name: builders[name] for name in CASE_NAMES["0.4.2"]}


CASES = {"0.1.0": v010_cases, "0.4.2": v042_cases}
# The case names, known without importing torchbricks (checked against the builders).
CASE_NAMES = {
    "0.1.0": ("readme_dummy", "readme_with_loss", "readme_resnet", "readme_nested_heads", "readme_all_input",
              "readme_stage", "readme_visualization", "module_renderer", "keyword_inputs", "lenet5"),
    "0.4.2": ("readme_dummy", "readme_tags", "readme_resnet", "readme_nested_heads", "bag_of_bricks_classifier",
              "backbone_resnet", "readme_all_input", "readme_visualization", "module_renderer", "keyword_inputs"),
}
