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


def test_volume_folds_train_through_the_one_pipeline(tmp_path: Path) -> None:
    from seglab.data.volumes import write_blobs3d

    root = tmp_path / "blobs"
    write_blobs3d(root, 4, size=16, seed=0, splits=None)
    overrides = [
        f"data.root={root}",
        "data.layout=volumes",
        "model.name=unet3d",
        "model.params={n_filters: 1, depth: 2}",
        "data.patch=[16,16,16]",
        "data.batch_size=2",
        "data.patches_per_volume=1",
        "train.epochs=1",
        "tracking.enabled=false",
    ]
    config = load_config(None, overrides)
    folds = fold_assignments(config, 2)
    assert sorted(s for fold in folds for s in fold["val"]) == [
        f"blobs3d_{i:04d}" for i in range(4)
    ]
    result = cross_validate(config, 2, tmp_path / "cv", progress=False)
    assert len(result.folds) == 2 and 0 <= result.mean["dice"] <= 1
    for index, fold in enumerate(folds, start=1):
        splits = json.loads((tmp_path / "cv" / f"fold-{index}" / "splits.json").read_text())
        assert splits["layout"] == "volumes"
        assert {Path(p).name.split(".")[0] for p in splits["val"]} == set(fold["val"])
