"""Per-stage views of a flattened collection: alive bricks, required inputs and validation.

The server refuses collections with a cycle or with two producers of one name in a stage;
the exporter checks the same here so that such a collection fails at export, not at load.
"""
from typing import Dict, Iterable, List, Sequence

from .collection import BrickSpec
from .errors import ExportError
from .stages import STAGE_NAMES


def alive_bricks(specs: Iterable[BrickSpec], stage: str) -> List[BrickSpec]:
    """The bricks alive in `stage` (an upper-case name), in collection order."""
    return [spec for spec in specs if stage in spec.alive]


def required_inputs(specs: Sequence[BrickSpec], stage: str) -> List[str]:
    """Names consumed by bricks alive in `stage` that no alive brick produces, in order of first use."""
    alive = alive_bricks(specs, stage)
    produced = {name for spec in alive for name in spec.outputs}
    return _unique(name for spec in alive for name in spec.tensor_inputs if name not in produced)


def declared_inputs(specs: Sequence[BrickSpec]) -> List[str]:
    """Every name that some stage requires from the caller, in order of first use over all bricks."""
    required = {name for stage in STAGE_NAMES for name in required_inputs(specs, stage)}
    return _unique(name for spec in specs for name in spec.tensor_inputs if name in required)


def validate_stages(specs: Sequence[BrickSpec]) -> None:
    """Raises ExportError naming the bricks when a stage has a duplicate producer or a cycle."""
    for stage in STAGE_NAMES:
        alive = alive_bricks(specs, stage)
        producer: Dict[str, BrickSpec] = {}
        for spec in alive:
            for name in spec.outputs:
                if name in producer:
                    raise ExportError(f"bricks '{producer[name].name}' and '{spec.name}' both produce "
                                      f"'{name}' in stage {stage}")
                producer[name] = spec
        _check_acyclic(alive, producer, stage)


def _check_acyclic(alive: List[BrickSpec], producer: Dict[str, BrickSpec], stage: str) -> None:
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(spec: BrickSpec, path: List[str]) -> None:
        state[spec.name] = 1
        for name in spec.tensor_inputs:
            upstream = producer.get(name)
            if upstream is None or state.get(upstream.name) == 2:
                continue
            if state.get(upstream.name) == 1:
                cycle = path[path.index(upstream.name):] + [upstream.name]
                raise ExportError(f"bricks form a dependency cycle in stage {stage}: {' -> '.join(cycle)}")
            visit(upstream, path + [upstream.name])
        state[spec.name] = 2

    for spec in alive:
        if spec.name not in state:
            visit(spec, [spec.name])


def _unique(names: Iterable[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)
