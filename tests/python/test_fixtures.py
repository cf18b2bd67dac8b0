"""make_fixtures.py writes every package the C++ tests expect, valid ones with references."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from package_helpers import flat_bricks
from torchbricks_export import load_reference

REPO = Path(__file__).resolve().parents[2]
VALID = ["readme_dummy", "readme_loss", "nested_heads", "all_input", "stage_preprocessor", "resnet18_classifier",
         "dict_output", "keyword_inputs", "stage_traced", "lookup_table", "renderer_gallery", "vision_classifier"]
INVALID = {"invalid_cycle": "ping", "invalid_duplicate_producer": "second_writer",
           "invalid_climb_above_root": "outer/climber", "invalid_missing_input": "orphan_consumer",
           "invalid_missing_module": "ghost", "invalid_corrupt_module": "garbled", "invalid_tuple_arity": "two_headed",
           "invalid_unknown_keyword": "mislabeled", "invalid_keyword_without_default": "half_named",
           "invalid_stage_modules_without_stage": "unstaged", "invalid_argument_count": "miscounted",
           "invalid_unknown_stage_number": "staged", "invalid_stage_listed_twice": "twice",
           "invalid_module_outside_package": "escaper"}
EMPTY = "invalid_empty_manifest"  # no brick at all
AOTI = ["aoti_mixed", "aoti_corrupt", "aoti_missing"]  # AOTInductor bricks (aoti_fixtures.py)
FUSED = ["aoti_fused", "aoti_fused_corrupt"]  # with a fused INFERENCE program (aoti_fused_fixtures.py)


def test_make_fixtures(tmp_path, parse_bricks):
    result = subprocess.run([sys.executable, str(REPO / "tests" / "fixtures" / "make_fixtures.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(VALID) + len(INVALID) + 1 + len(AOTI) + len(FUSED)  # + EMPTY
    for name in VALID:
        version = tmp_path / name / "1"
        bricks = flat_bricks(parse_bricks(version))
        assert all((version / brick.module_file).is_file() for brick in bricks.values() if brick.module_file), name
        assert all((version / m.module_file).is_file() for brick in bricks.values() for m in brick.stage_modules), name
        assert any((version / "reference").iterdir()), name
    stages = {p.stem for p in (tmp_path / "resnet18_classifier" / "1" / "reference").iterdir()}
    assert stages == {"INFERENCE", "EXPORT", "TRAIN"}
    _, inputs, _ = load_reference(tmp_path / "readme_loss" / "1" / "reference" / "TRAIN.pt")
    assert sorted(inputs) == ["raw_images", "targets"]
    for name, culprit in INVALID.items():
        version = tmp_path / name / "1"
        bricks = flat_bricks(parse_bricks(version))  # each is well-formed text with one semantic defect
        assert culprit in bricks, name
    assert not (tmp_path / "invalid_missing_module" / "1" / "modules" / "ghost.pt").exists()
    for name in AOTI:
        assert (tmp_path / name / "1" / "modules" / "backbone.pt2").is_file(), name
    assert not (tmp_path / "aoti_missing" / "1" / "modules" / "head.pt2").exists()
    for name in FUSED:
        (fused,) = parse_bricks(tmp_path / name / "1").fused_stages
        program = tmp_path / name / "1" / fused.module_file
        assert program.is_file(), name
    whole = (tmp_path / "aoti_fused" / "1" / fused.module_file).stat().st_size
    assert (tmp_path / "aoti_fused_corrupt" / "1" / fused.module_file).stat().st_size < whole
    garbled = tmp_path / "invalid_corrupt_module" / "1" / "modules" / "garbled.pt"
    with pytest.raises(RuntimeError):
        torch.jit.load(str(garbled))
