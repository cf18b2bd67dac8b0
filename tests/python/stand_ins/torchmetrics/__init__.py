"""Test stand-in for `torchmetrics` (see ../README.md): the API torchbricks 0.1.0 and 0.4.2 use."""
import copy
from typing import Any, Dict

import torch
from torch import nn


class Metric(nn.Module):
    """Accumulates state over `update` calls; `compute` summarises it; calling it does both."""

    full_state_update = True

    def __init__(self, **_kwargs: Any) -> None:
        super().__init__()
        self._defaults: Dict[str, Any] = {}

    def add_state(self, name: str, default: Any, dist_reduce_fx: Any = None) -> None:
        self._defaults[name] = default
        setattr(self, name, copy.deepcopy(default))

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def compute(self) -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))

    def clone(self) -> "Metric":
        return copy.deepcopy(self)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.update(*args, **kwargs)
        return self.compute()


class MetricCollection(nn.ModuleDict):
    """A named set of metrics updated together."""

    def __init__(self, metrics: Dict[str, Metric]) -> None:
        super().__init__(metrics)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for metric in self.values():
            metric.update(*args, **kwargs)

    def compute(self) -> Dict[str, Any]:
        return {name: metric.compute() for name, metric in self.items()}

    def reset(self) -> None:
        for metric in self.values():
            metric.reset()

    def clone(self) -> "MetricCollection":
        return copy.deepcopy(self)

    def forward(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        return {name: metric(*args, **kwargs) for name, metric in self.items()}


class MulticlassAccuracy(Metric):
    """Share of correct class predictions ("micro"), or the mean per-class recall ("macro")."""

    def __init__(self, num_classes: int, average: str = "macro", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes, self.average = num_classes, average
        self.add_state("correct", torch.zeros(num_classes))
        self.add_state("total", torch.zeros(num_classes))

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = preds.argmax(dim=1)
        ones = torch.ones_like(target, dtype=torch.float32)
        self.total = self.total.index_add(0, target, ones)
        self.correct = self.correct.index_add(0, target, (preds == target).float())

    def compute(self) -> torch.Tensor:
        if self.average == "micro":
            return self.correct.sum() / self.total.sum().clamp(min=1)
        seen = self.total > 0
        return (self.correct[seen] / self.total[seen]).mean() if seen.any() else torch.tensor(0.0)


class ConfusionMatrix(Metric):
    """Counts of (target, prediction) pairs."""

    def __init__(self, task: str = "multiclass", num_classes: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes, num_classes, dtype=torch.int64))

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1:
            preds = preds.argmax(dim=1)
        flat = target * self.num_classes + preds
        self.counts = self.counts + torch.bincount(flat, minlength=self.num_classes ** 2).view_as(self.counts)

    def compute(self) -> torch.Tensor:
        return self.counts
