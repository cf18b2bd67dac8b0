"""Stages, brick kinds and the rules that map torchbricks' brick flavours onto them.

torchbricks 0.1 bricks carry `alive_stages` (a list of `Stage` enums or the string "all");
torchbricks >= 0.3 bricks carry `tags` (a set of strings). Both are reduced here to the
upper-case stage names of `proto/bricks.proto` ("TRAIN", ..., "EXPORT").
"""
from enum import Enum
from typing import Any, FrozenSet, Iterable, Optional

from .errors import ExportError


class Stage(Enum):
    """The stages of torchbricks, with torchbricks 0.1's values."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    INFERENCE = "inference"
    EXPORT = "export"


STAGE_NAMES = tuple(stage.name for stage in Stage)  # canonical order, as in the proto enum
ALL_STAGES: FrozenSet[str] = frozenset(STAGE_NAMES)
TRAINING_STAGES: FrozenSet[str] = frozenset({"TRAIN", "VALIDATION", "TEST"})

KINDS = ("TRAINABLE", "NOT_TRAINABLE", "LOSS", "METRIC", "VISUALIZATION")

DEFAULT_ALIVE = {
    "TRAINABLE": ALL_STAGES,
    "NOT_TRAINABLE": ALL_STAGES,
    "LOSS": TRAINING_STAGES,
    "METRIC": TRAINING_STAGES,
    "VISUALIZATION": frozenset({"INFERENCE"}),
}

# torchbricks >= 0.3 tags -> stages in which a brick with that tag is alive.
TAG_STAGES = {
    "MODEL": ALL_STAGES,
    "LOSS": TRAINING_STAGES,
    "METRIC": TRAINING_STAGES,
    "METRIC_EXTRA": frozenset({"TEST"}),
    "VISUALIZATION": frozenset({"INFERENCE"}),
}

# Brick class names written for plain-dict bricks, by kind.
BRICK_TYPE_FOR_KIND = {
    "TRAINABLE": "BrickTrainable",
    "NOT_TRAINABLE": "BrickNotTrainable",
    "LOSS": "BrickLoss",
    "METRIC": "BrickMetricSingle",
    "VISUALIZATION": "BrickPerImageVisualization",
}


def stage_name(stage: Any) -> str:
    """Returns the upper-case name of a Stage-like enum or a stage string ("export", "EXPORT").

    Raises ExportError for anything that is not one of the five stages.
    """
    name = stage.name if isinstance(stage, Enum) else stage
    if isinstance(name, str) and name.upper() in ALL_STAGES:
        return name.upper()
    raise ExportError(f"unknown stage {stage!r}; expected one of {', '.join(STAGE_NAMES)}")


def is_stage_like(value: Any) -> bool:
    """True when `value` names one of the five stages (enum or string, any case)."""
    try:
        stage_name(value)
    except ExportError:
        return False
    return True


def parse_alive_stages(alive: Any, where: str) -> FrozenSet[str]:
    """Reduces `alive_stages` ("all" or an iterable of Stage-likes) to a set of stage names."""
    if isinstance(alive, Enum):
        alive = [alive]
    if isinstance(alive, str):
        if alive.lower() == "all":
            return ALL_STAGES
        raise ExportError(f"{where}: alive_stages must be 'all' or a list of stages, got {alive!r}")
    try:
        return frozenset(stage_name(stage) for stage in alive)
    except ExportError as error:
        raise ExportError(f"{where}: {error}") from None


def stages_from_tags(tags: Iterable[str]) -> FrozenSet[str]:
    """Union of the stages of every known tag (torchbricks >= 0.3); unknown tags add nothing."""
    alive: FrozenSet[str] = frozenset()
    for tag in tags:
        alive |= TAG_STAGES.get(str(tag).upper(), frozenset())
    return alive


def kind_from_tags(tags: Iterable[str]) -> Optional[str]:
    """The kind decided by LOSS / METRIC / VISUALIZATION tags, or None when none is present."""
    upper = {str(tag).upper() for tag in tags}
    for tag, kind in (("LOSS", "LOSS"), ("METRIC", "METRIC"), ("METRIC_EXTRA", "METRIC"),
                      ("VISUALIZATION", "VISUALIZATION")):
        if tag in upper:
            return kind
    return None


def kind_from_class_name(class_name: str) -> Optional[str]:
    """The kind implied by a brick class name ("BrickNotTrainable" -> NOT_TRAINABLE), or None."""
    for marker, kind in (("NotTrainable", "NOT_TRAINABLE"), ("Loss", "LOSS"), ("Metric", "METRIC"),
                         ("Visual", "VISUALIZATION"), ("Trainable", "TRAINABLE")):
        if marker in class_name:
            return kind
    return None
