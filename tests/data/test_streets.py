"""Synthetic street scenes: labels, determinism, geometry, the written Cityscapes tree, the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seglab.cli.main import app
from seglab.data.io import read_image, read_label_image
from seglab.data.labels import cityscapes_mapping
from seglab.data.layouts import find_samples
from seglab.data.street_drawing import ROAD, SIDEWALK, SKY, STREET_LABEL_IDS
from seglab.data.streets import make_street, write_streets
from seglab.data.synthetic import write_synthetic
from seglab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def batch() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_street(np.random.default_rng([0, i])) for i in range(20)]


def test_shapes_and_determinism() -> None:
    image, labels = make_street(np.random.default_rng(5), height=64, width=96)
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    assert labels.shape == (64, 96) and labels.dtype == np.uint8
    again_image, again_labels = make_street(np.random.default_rng(5), height=64, width=96)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(labels, again_labels)
    other_image, _ = make_street(np.random.default_rng(6), height=64, width=96)
    assert not np.array_equal(image, other_image)
    with pytest.raises(ValueError, match="32x32"):
        make_street(np.random.default_rng(0), height=16)


def test_every_listed_class_appears_and_nothing_else(batch: list) -> None:
    present = set().union(*(np.unique(labels).tolist() for _, labels in batch))
    assert present == set(STREET_LABEL_IDS)
    # Real label ids: sky 23, road 7, sidewalk 8, building 11, vegetation 21, car 26, person 24,
    # pole 17, traffic sign 20, ego vehicle 1, out of roi 3.
    assert set(STREET_LABEL_IDS) == {1, 3, 7, 8, 11, 17, 20, 21, 23, 24, 26}


def test_sky_is_above_the_ground_in_every_column(batch: list) -> None:
    for _, labels in batch:
        rows = np.arange(labels.shape[0])[:, None]
        lowest_sky = np.where(labels == SKY, rows, -1).max(axis=0)
        ground = (labels == ROAD) | (labels == SIDEWALK)
        highest_ground = np.where(ground, rows, labels.shape[0]).min(axis=0)
        assert np.all(lowest_sky < highest_ground)


def test_colour_alone_does_not_decide_the_class(batch: list) -> None:
    # Even a lookup table fitted on these very pixels (majority class per colour bin, 16 levels
    # per channel) stays far from perfect: overlapping colours need shape and position.
    colours = np.concatenate([image.reshape(-1, 3) for image, _ in batch]) // 16
    labels = np.concatenate([labels.ravel() for _, labels in batch])
    bins = colours[:, 0].astype(int) * 256 + colours[:, 1] * 16 + colours[:, 2]
    table = np.zeros((4096, 256), np.int64)
    np.add.at(table, (bins, labels), 1)
    accuracy = table.max(axis=1).sum() / len(labels)
    assert accuracy < 0.8


def test_images_are_not_flat(batch: list) -> None:
    for image, labels in batch:
        road = image[labels == ROAD].astype(float)
        assert road.std(axis=0).min() > 2  # texture and noise, not a flat fill


def test_write_streets_tree(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "streets"
    counts = write_streets(out, 20, height=32, width=64, seed=3)
    # 20 x 0.15 = 3 for val and for test, the other 14 for train.
    assert counts == {"train": 14, "val": 3, "test": 3}
    assert not (tmp_path / "streets.partial").exists()
    found = find_samples(out)
    assert found.layout == "cityscapes" and not found.skipped
    assert {k: len(v) for k, v in found.splits.items()} == counts
    cities = {split: {s.id.split("_")[0] for s in found.splits[split]} for split in counts}
    assert cities == {"train": {"synthtown", "pixelburg"}, "val": {"valdorf"}, "test": {"testheim"}}
    first = found.splits["train"][0]
    index = int(first.id.rsplit("_", 1)[1])
    image, labels = make_street(np.random.default_rng([3, index]), 32, 64)
    np.testing.assert_array_equal(read_image(first.image), image)
    np.testing.assert_array_equal(read_label_image(first.masks[0]), labels)
    with caplog.at_level(logging.WARNING):  # every written id is in the official table
        cityscapes_mapping("train_ids").apply(read_label_image(first.masks[0]), first.masks[0])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_write_streets_refuses_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train/val/test"):
        write_streets(tmp_path / "a", 3, splits=None)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_streets(tmp_path / "b", 3)
    with pytest.raises(ConfigError, match="at least 1"):
        write_streets(tmp_path / "c", 0)


def test_write_synthetic_streets_is_twice_as_wide(tmp_path: Path) -> None:
    counts = write_synthetic("streets", tmp_path / "s", 7, size=32, seed=1)
    assert counts == {"train": 5, "val": 1, "test": 1}  # 7 x 0.15 = 1.05 rounds to 1
    image = next((tmp_path / "s" / "leftImg8bit").rglob("*.png"))
    assert read_image(image).shape == (32, 64, 3)


def test_cli_data_synth_streets(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "synth", "--kind", "streets", "--n", "4", "--size", "32", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # rich wraps long lines
    assert "train 2, val 1, test 1" in words  # 4 x 0.15 = 0.6 rounds to 1
    found = find_samples(out)
    assert found.layout == "cityscapes"
    assert read_image(found.splits["val"][0].image).shape == (32, 64, 3)
