"""Training on volumes: the run folder contract, the bundle, reproducibility, the patch, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import RUN_FOLDER_FILES
from seglab.bundle import load_bundle, read_metadata
from seglab.config import load_config
from seglab.data.patches import choose_patch
from seglab.data.volumes import write_blobs3d, write_volume
from seglab.errors import ConfigError, DataError
from seglab.models import create_model
from seglab.planner import plan_patch
from seglab.training.run import RunResult, train

# A 3D U-Net small enough to train 2 epochs on 4 volumes of 16³ in seconds.
TINY = [
    "data.layout=volumes",
    "model.name=unet3d",
    "model.params={n_filters: 1, depth: 2}",
    "data.patch=[16,16,16]",
    "data.batch_size=2",
    "data.patches_per_volume=2",
    "train.epochs=2",
    "tracking.enabled=false",
]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 volumes of 16³: 2 train, 1 val, 1 test."""
    out = tmp_path_factory.mktemp("volumes") / "blobs"
    write_blobs3d(out, 4, size=16, seed=0, splits=(0.5, 0.25, 0.25))
    return out


@pytest.fixture(scope="module")
def run(blobs: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    config = load_config(None, [f"data.root={blobs}", *TINY])
    return train(config, tmp_path_factory.mktemp("runs") / "run", progress=False)


def test_run_folder_follows_the_2d_contract(run: RunResult) -> None:
    for name in (*RUN_FOLDER_FILES, "eval/test/slices/blobs3d_0003.png"):
        assert (run.run_dir / name).is_file(), name
    with (run.run_dir / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_dice"]) <= 1 for r in rows)
    splits = json.loads((run.run_dir / "splits.json").read_text())
    assert splits["layout"] == "volumes"
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert splits["test"][0].endswith("blobs3d_0003.tif")


def test_bundle_describes_a_volume_model(run: RunResult) -> None:
    meta = read_metadata(run.bundle_path)
    assert meta["spatial_dims"] == 3 and meta["model"]["name"] == "unet3d"
    assert meta["preprocessing"]["tile"] == [16, 16, 16]
    assert meta["model"]["kwargs"] == {
        "in_channels": 1,
        "num_classes": 1,
        "n_filters": 1,
        "depth": 2,
    }
    assert 0.05 <= meta["threshold"] <= 0.95 and meta["threshold"] == run.threshold
    assert meta["metrics"]["val"]["dice"] == pytest.approx(run.val_metrics["dice"])
    # One volume in val: its per-volume mean is its micro score.
    assert run.val_metrics["dice_per_image"] == pytest.approx(run.val_metrics["dice"])
    assert run.test_metrics is not None and run.test_metrics["n_images"] == 1
    model, _ = load_bundle(run.bundle_path)
    assert type(model).__name__ == "UNet3D"


def test_same_seed_same_run(run: RunResult, blobs: Path, tmp_path: Path) -> None:
    again = train(load_config(None, [f"data.root={blobs}", *TINY]), tmp_path / "b", progress=False)
    assert again.val_metrics == run.val_metrics
    first, _ = load_bundle(run.bundle_path)
    second, _ = load_bundle(again.bundle_path)
    for (name, x), (_, y) in zip(first.state_dict().items(), second.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), name


def test_volumes_default_to_unet3d_and_a_2d_model_is_refused(blobs: Path, tmp_path: Path) -> None:
    overrides = [f"data.root={blobs}", "data.layout=volumes", "tracking.enabled=false"]
    assert load_config(None, overrides).model.name == "unet3d"
    with pytest.raises(ConfigError, match="model.name=unet3d"):
        train(load_config(None, [*overrides, "model.name=unet"]), tmp_path / "run", progress=False)


def test_unlabelled_volumes_are_refused(tmp_path: Path) -> None:
    for index in range(3):
        write_volume(tmp_path / "data" / "images" / f"v{index}.npy", np.zeros((8, 8, 8), np.uint8))
    config = load_config(None, [f"data.root={tmp_path / 'data'}", *TINY])
    with pytest.raises(DataError, match="no labels"):
        train(config, tmp_path / "run", progress=False)


def test_bad_patch_is_a_config_error(blobs: Path, tmp_path: Path) -> None:
    config = load_config(None, [f"data.root={blobs}", *TINY, "data.patch=[16,16]"])
    with pytest.raises(ConfigError, match="data.patch"):
        train(config, tmp_path / "run", progress=False)


KWARGS = {"in_channels": 1, "num_classes": 1, "n_filters": 1, "depth": 2}


def tiny_unet3d() -> torch.nn.Module:
    return create_model("unet3d", **KWARGS)


def test_default_patch_is_64_capped_at_the_volumes_extent() -> None:
    # Divisor 2**2 = 4. Largest extents 18, 30, 70 rounded up to multiples of 4: 20, 32, 72;
    # capped at 64 per axis: [20, 32, 64].
    shapes = [(18, 30, 70), (10, 12, 14)]
    assert choose_patch(None, tiny_unet3d, 1, 2, shapes) == (20, 32, 64)
    assert choose_patch([5, 6, 7], tiny_unet3d, 1, 2, shapes) == (5, 6, 7)


def test_auto_patch_is_the_planner_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 64 * 2**20  # half of the 128 MiB free
    monkeypatch.setattr("seglab.planner.free_memory_bytes", lambda: 2 * budget)
    (row,) = plan_patch(tiny_unet3d, 1, budget, 4, max_side=128, batches=(2,))
    # Volumes of 128³: the cube side is the planner's (it is below 128 at 64 MiB).
    assert row.side < 128
    assert choose_patch("auto", tiny_unet3d, 1, 2, [(128, 128, 128)]) == (row.side,) * 3
    # Thin volumes cap the patch on their short axis: 8 is a multiple of the divisor 4.
    assert choose_patch("auto", tiny_unet3d, 1, 2, [(8, 128, 128)]) == (8, row.side, row.side)
    monkeypatch.setattr("seglab.planner.free_memory_bytes", lambda: 1000)
    with pytest.raises(ConfigError, match="no patch fits"):
        choose_patch("auto", tiny_unet3d, 1, 2, [(128, 128, 128)])


def test_multiclass_volumes_default_to_the_multiclass_loss() -> None:
    # Trained end to end in test_multiclass_volumes.py.
    config = load_config(None, ["data.layout=volumes", "data.num_classes=3"])
    assert config.loss.name == "ce_dice" and config.model.name == "unet3d"
