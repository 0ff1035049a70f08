"""Cross-validation of a segmentation config."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import tiny_overrides
from seglab.config import load_config
from seglab.training.crossval import cross_validate, fold_assignments


def test_segmentation_folds_partition_the_samples(nuclei_dir: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(nuclei_dir, "train.epochs=1"))
    folds = fold_assignments(config, 3)
    held_out = [i for fold in folds for i in fold["val"]]
    assert len(held_out) == len(set(held_out)) == 20
    result = cross_validate(config, 3, tmp_path / "cv", progress=False)
    assert len(result.folds) == 3 and 0 <= result.mean["dice"] <= 1
    for index, fold in enumerate(folds, start=1):
        splits = json.loads((tmp_path / "cv" / f"fold-{index}" / "splits.json").read_text())
        assert {Path(p).stem for p in splits["val"]} == set(fold["val"])
    assert (tmp_path / "cv" / "cv.md").read_text().count("\n") == 2 + 3 + 2
