"""Stages, brick kinds and the rules that map torchbricks' brick flavours onto them.

torchbricks 0.1 bricks carry `alive_stages` (a list of `Stage` enums or the string "all");
torchbricks >= 0.3 bricks carry `tags` (a set of strings). Both are reduced here to the
upper-case stage names of `proto/bricks.proto` ("TRAIN", ..., "EXPORT").
"""
import importlib
import warnings
from enum import Enum
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional

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

# torchbricks >= 0.3: the tags each stage runs, as documented by its `brick_tags` module
# (DEFAULT_MODEL_STAGE_TAGS). Used only when the library's own mapping cannot be imported.
DOCUMENTED_STAGE_TAGS = {
    "TRAIN": frozenset({"MODEL", "LOSS", "METRIC"}),
    "VALIDATION": frozenset({"MODEL", "LOSS", "METRIC"}),
    "TEST": frozenset({"MODEL", "LOSS", "METRIC", "METRIC_EXTRA"}),
    "INFERENCE": frozenset({"MODEL"}),
    "EXPORT": frozenset({"MODEL"}),
}
SERVED_STAGES = ("INFERENCE", "EXPORT")

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


def library_stage_tags(brick: Any) -> Dict[str, FrozenSet[str]]:
    """The stage -> tags mapping of the torchbricks that defined `brick`'s class
    (`<package>.brick_tags.DEFAULT_MODEL_STAGE_TAGS`), or the documented default."""
    package = type(brick).__module__.split(".")[0]
    try:
        mapping = importlib.import_module(f"{package}.brick_tags").DEFAULT_MODEL_STAGE_TAGS
    except (ImportError, AttributeError):
        return dict(DOCUMENTED_STAGE_TAGS)
    return {str(stage).upper(): frozenset(str(tag) for tag in tags) for stage, tags in mapping.items()}


def library_stage_enum(brick: Any) -> Any:
    """The `Stage` enum torchbricks 0.1 hands a module that takes the input "stage": the class
    of the brick's alive stages, else `<package>.bricks.Stage`; None when there is none."""
    for stage in getattr(brick, "alive_stages", None) or ():
        if isinstance(stage, Enum):
            return type(stage)
    package = type(brick).__module__.split(".")[0]
    try:
        stage_enum = importlib.import_module(f"{package}.bricks").Stage
    except (ImportError, AttributeError):
        return None
    return stage_enum if isinstance(stage_enum, type) and issubclass(stage_enum, Enum) else None


def check_stage_tags(stage_tags: Any) -> Optional[Dict[str, FrozenSet[str]]]:
    """Validates export_brick_collection's `stage_tags` ({stage: tag or tags}) once and
    returns it normalised; raises ExportError naming the bad entry."""
    if stage_tags is None:
        return None
    if not isinstance(stage_tags, Mapping):
        raise ExportError(f"stage_tags must be a dict {{stage: tags}}, got {type(stage_tags).__name__}")
    normalised = {}
    for stage, tags in stage_tags.items():
        try:
            name = stage_name(stage)
        except ExportError:
            raise ExportError(f"stage_tags: unknown stage {stage!r}; expected one of {', '.join(STAGE_NAMES)}") from None
        if isinstance(tags, str):
            tags = {tags}
        if not isinstance(tags, (set, frozenset, list, tuple)) or not all(isinstance(tag, str) for tag in tags):
            raise ExportError(f"stage_tags[{stage!r}] must be a tag or a set of tags (strings), got {tags!r}")
        normalised[name] = frozenset(tags)
    return normalised


def stages_from_tags(tags: Iterable[str], brick: Any, where: str,
                     stage_tags: Optional[Mapping[str, Iterable[str]]] = None) -> FrozenSet[str]:
    """The stages whose tag set shares a tag with `tags` (torchbricks >= 0.3).

    The sets are the library's own mapping, with the stages that `stage_tags` names replaced
    by its sets. Warns, naming the brick, when it carries a tag that no stage runs
    and is therefore not served (left out of INFERENCE and EXPORT).
    """
    if isinstance(tags, str):
        tags = {tags}
    tags = {str(tag) for tag in tags}
    mapping = library_stage_tags(brick)
    mapping.update(stage_tags or {})
    alive = frozenset(stage for stage in STAGE_NAMES if tags & mapping.get(stage, frozenset()))
    known = frozenset().union(*mapping.values()) if mapping else frozenset()
    unknown = sorted(tags - known)
    if unknown and not alive & set(SERVED_STAGES):
        warnings.warn(f"brick '{where}' has the tag(s) {', '.join(unknown)}, which no stage runs "
                      f"(DEFAULT_MODEL_STAGE_TAGS{' and the stage_tags given' if stage_tags else ''}); "
                      "it is left out of INFERENCE and EXPORT. To serve it, pass e.g. "
                      "stage_tags={'INFERENCE': {'MODEL', '" + unknown[0] + "'}, 'EXPORT': {'MODEL'}} "
                      "to export_brick_collection", stacklevel=6)
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
