"""`compare` over losses and seeds: run naming, aggregation, and end to end on tiny streets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from seglab.baseline import BASELINES
from seglab.training.compare import _aggregate, _run_name, _runs


def test_runs_pair_every_network_with_every_loss_and_baselines_once() -> None:
    pairs = _runs(["otsu", "unet"], ["dice", "jaccard"], BASELINES)
    assert pairs == [("otsu", None), ("unet", "dice"), ("unet", "jaccard")]
    assert _runs(["unet"], None, BASELINES) == [("unet", None)]


def test_run_names_say_what_varies() -> None:
    assert _run_name("unet", None, ["unet", "otsu"], None) == "unet"
    assert _run_name("unet", "dice", ["unet"], ["dice", "ce"]) == "dice"
    assert _run_name("unet", "dice", ["unet", "unet_mini"], ["dice"]) == "unet-dice"


def test_aggregate_gives_mean_and_sample_std() -> None:
    results = [
        {"miou": 0.5, "val_loss": 1.0, "per_class": {"sky": {"iou": 0.9}, "road": {"iou": None}}},
        {"miou": 0.7, "val_loss": 2.0, "per_class": {"sky": {"iou": 0.7}, "road": {"iou": None}}},
    ]
    row = _aggregate(results)
    # mean(0.5, 0.7) = 0.6; sample std = sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.141421...
    assert row["miou"] == pytest.approx(0.6)
    assert row["miou_std"] == pytest.approx(math.sqrt(0.02))
    assert row["val_loss"] == pytest.approx(1.5)
    assert row["iou_sky"] == pytest.approx(0.8)
    assert "iou_road" not in row  # a class never scored stays out of the table


def test_aggregate_of_one_seed_has_no_spread() -> None:
    row = _aggregate([{"dice": 0.9, "per_modality": {"fluorescence": {"dice": 0.8}}}])
    assert row == {"dice": 0.9, "dice_fluorescence": 0.8}


@pytest.mark.slow
def test_compare_losses_trains_each_run_with_its_own_loss(tmp_path: Path) -> None:
    import torch

    from seglab.config import load_config
    from seglab.data.streets import write_streets
    from seglab.objectives.losses import create_loss
    from seglab.training.compare import compare

    data = tmp_path / "streets"
    write_streets(data, 8, height=32, width=64, seed=0)
    config = load_config(
        None,
        [
            f"data.root={data}",
            "model.name=unet_mini",
            "train.epochs=1",
            "data.batch_size=4",
            "tracking.enabled=false",
        ],
    )
    losses = ["dice", "ce_dice", "tversky"]
    result = compare(config, None, tmp_path / "cmp", progress=False, losses=losses)
    assert [row["run"] for row in result.rows] == losses
    assert [row["loss"] for row in result.rows] == losses
    for ext in ("csv", "md", "png"):
        assert (tmp_path / "cmp" / f"comparison.{ext}").stat().st_size > 0
    header = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()[0].split(",")
    assert {"run", "loss", "val_loss", "miou", "dice", "f1", "seconds"} <= set(header)
    assert any(column.startswith("iou_") for column in header)
    recorded = [
        yaml.safe_load((tmp_path / "cmp" / loss / "config.yaml").read_text())["loss"]["name"]
        for loss in losses
    ]
    assert recorded == losses
    # The recorded losses are really different functions: on one batch they disagree.
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 8, 8, generator=generator)
    target = torch.randint(0, 7, (2, 8, 8), generator=generator)
    values = {float(create_loss(name, mode="multiclass")(logits, target)) for name in recorded}
    assert len(values) == len(losses)
