"""A minimal stand-in for the pip-installed `torchbricks` package, for tests only.

torchbricks cannot be installed here (no PyPI access, and it is not packaged for Debian), yet
the exporter must accept real torchbricks objects. This module reproduces the *public shape*
of its bricks, which is all the exporter relies on (it duck-types them):

- the 0.1 API: `Stage`, `BrickTrainable`, `BrickNotTrainable`, `BrickLoss`, `BrickMetricSingle`,
  `BrickPerImageVisualization(callable, ...)` (its model calls `callable` once per image),
  each `Brick(model, input_names, output_names, alive_stages="all" | [Stage, ...])` with the
  kind's default alive stages, and `BrickCollection`, an nn.ModuleDict over (nested) dicts
  that runs the bricks alive in a stage;
- the >= 0.3 tag API: `BrickTaggedModel`, `BrickTaggedLoss`, `BrickTaggedMetric` with `tags`.

It is written from torchbricks' documented behaviour, not copied from its sources.
"""
from enum import Enum
from typing import Any, Dict, Iterable, List, Optional, Set, Union

import torch
from torch import nn


class Stage(Enum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    INFERENCE = "inference"
    EXPORT = "export"


def _alive(alive_stages: Union[str, Iterable[Stage]]) -> List[Stage]:
    if isinstance(alive_stages, str):
        assert alive_stages == "all", alive_stages
        return list(Stage)
    return list(alive_stages)


class _Brick(nn.Module):
    default_alive: Union[str, List[Stage]] = "all"

    def __init__(self, model: Any, input_names: List[str], output_names: Optional[List[str]] = None,
                 alive_stages: Union[str, List[Stage], None] = None) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names or [])
        self.alive_stages = _alive(self.default_alive if alive_stages is None else alive_stages)

    def run(self, named_values: Dict[str, Any], stage: Stage) -> Dict[str, Any]:
        args = [stage.name if name == "stage" else
                {k: v for k, v in named_values.items() if isinstance(v, torch.Tensor)} if name == "__all__" else
                named_values[name] for name in self.input_names]
        result = self.model(*args)
        if len(self.output_names) == 0:
            return {}
        if len(self.output_names) == 1:
            return {self.output_names[0]: result}
        return dict(zip(self.output_names, result))


class BrickTrainable(_Brick):
    pass


class BrickNotTrainable(_Brick):
    pass


class BrickLoss(_Brick):
    default_alive = [Stage.TRAIN, Stage.VALIDATION, Stage.TEST]


class BrickMetricSingle(_Brick):
    default_alive = [Stage.TRAIN, Stage.VALIDATION, Stage.TEST]


class _PerImageProcessing(nn.Module):
    """Calls `callable` once per image: [B, C, H, W] tensors become channels-last numpy images,
    other batched tensors one numpy row each, anything else is passed whole."""

    def __init__(self, callable: Any) -> None:
        super().__init__()
        self.callable = callable

    def forward(self, *values: Any) -> List[Any]:
        batch = {v.shape[0] for v in values if isinstance(v, torch.Tensor) and v.dim() > 0}
        assert len(batch) == 1, f"batch sizes disagree: {batch}"
        def unpack(value: Any, i: int) -> Any:
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                return value
            row = value[i].detach().cpu()
            return (row.permute(1, 2, 0) if value.dim() == 4 else row).numpy()
        return [self.callable(*(unpack(v, i) for v in values)) for i in range(batch.pop())]


class BrickPerImageVisualization(_Brick):
    default_alive = [Stage.INFERENCE]

    def __init__(self, callable: Any, input_names: List[str], output_names: List[str],
                 alive_stages: Union[str, List[Stage], None] = None) -> None:
        super().__init__(_PerImageProcessing(callable), input_names, output_names, alive_stages)


class BrickCollection(nn.ModuleDict):
    """A (nested) ordered dict of bricks; nested dicts become nested BrickCollections.

    Relative names are not resolved here (the stand-in only runs flat collections); the
    exporter's own reference executor is what the tests compare against.
    """

    def __init__(self, bricks: Dict[str, Any]) -> None:
        super().__init__({name: BrickCollection(value) if isinstance(value, dict) else value
                          for name, value in bricks.items()})

    def forward(self, named_inputs: Dict[str, Any], stage: Stage) -> Dict[str, Any]:
        values = dict(named_inputs)
        for brick in self.values():
            if isinstance(brick, BrickCollection):
                values = brick(values, stage)
            elif stage in brick.alive_stages:
                values.update(brick.run(values, stage))
        return values


class _TaggedBrick(nn.Module):
    """torchbricks >= 0.3 flavour: no alive_stages, a set of tags instead."""

    default_tags: Set[str] = {"MODEL"}

    def __init__(self, model: Any, input_names: List[str], output_names: Optional[List[str]] = None,
                 tags: Optional[Set[str]] = None) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names or [])
        self.tags = set(self.default_tags if tags is None else tags)


class BrickTaggedModel(_TaggedBrick):
    default_tags = {"MODEL"}


class BrickTaggedLoss(_TaggedBrick):
    default_tags = {"LOSS"}


class BrickTaggedMetric(_TaggedBrick):
    default_tags = {"METRIC"}
