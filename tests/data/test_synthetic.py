"""Synthetic datasets: deterministic by seed, sensible content, written in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seglab.data.layouts import find_samples
from seglab.data.loading import load_sample
from seglab.data.synthetic import (
    SYNTHETIC_KINDS,
    make_circles,
    make_nuclei,
    make_realistic_nuclei,
    write_synthetic,
)
from seglab.errors import ConfigError, DataError


def assert_same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]):
    assert len(a) == len(b)
    for (image_a, target_a), (image_b, target_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(target_a, target_b)


@pytest.mark.parametrize("make", [make_circles, make_nuclei])
def test_deterministic_by_seed(make) -> None:
    first = make(3, size=48, seed=5)
    assert_same(first, make(3, size=48, seed=5))
    assert_same(first[:2], make(2, size=48, seed=5))  # image i depends on (seed, i) only
    other = make(3, size=48, seed=6)
    assert not any(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_circles_content() -> None:
    for image, mask in make_circles(6, size=64):
        assert image.shape == (64, 64, 1) and image.dtype == np.uint8
        assert mask.shape == (64, 64) and mask.dtype == np.bool_
        assert 0 < mask.mean() < 1
        assert image[mask].mean() > image[~mask].mean() + 40  # bright circles


@pytest.mark.parametrize("variant", ["fluorescence", "brightfield", "mixed"])
def test_nuclei_content(variant: str) -> None:
    for image, labels in make_nuclei(4, size=96, variant=variant):
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert labels.shape == (96, 96) and labels.dtype == np.int32
        ids = np.unique(labels)
        np.testing.assert_array_equal(ids, np.arange(ids.size))  # 0 and labels 1..K
        assert ids.size > 3
        areas = np.bincount(labels.ravel())[1:]
        assert areas.min() >= 5  # no invisible nucleus


def test_nuclei_contrast_is_inverted_between_variants() -> None:
    for variant, sign in (("fluorescence", 1), ("brightfield", -1)):
        for image, labels in make_nuclei(3, size=64, variant=variant):
            gray = image.mean(axis=2)
            assert sign * (gray[labels > 0].mean() - gray[labels == 0].mean()) > 40


def test_some_nuclei_touch() -> None:
    touching = 0
    for _, labels in make_nuclei(4, size=96):
        right = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
        down = (labels[1:] != labels[:-1]) & (labels[1:] > 0) & (labels[:-1] > 0)
        touching += int(right.any() or down.any())
    assert touching >= 2


def test_unknown_variant_and_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="brightfield"):
        make_nuclei(1, variant="phase")
    with pytest.raises(ConfigError, match="circles, nuclei, nuclei_simple, streets"):
        write_synthetic("roads", tmp_path / "out", 2)
    assert set(SYNTHETIC_KINDS) == {"circles", "nuclei", "nuclei_simple", "streets"}


def test_write_circles_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "circles"
    counts = write_synthetic("circles", out, 10, size=32, seed=1)
    assert counts == {"train": 6, "val": 2, "test": 2}
    found = find_samples(out)
    assert found.layout == SYNTHETIC_KINDS["circles"].layout == "folders"
    assert {k: len(v) for k, v in found.splits.items()} == counts
    assert not (tmp_path / "circles.partial").exists()
    first = found.splits["train"][0]
    assert first.id == "circles_0000"
    loaded = load_sample(first)
    image, mask = make_circles(1, size=32, seed=1)[0]
    np.testing.assert_array_equal(loaded.image, image)
    np.testing.assert_array_equal(loaded.mask, mask)


def test_write_nuclei_round_trip_without_splits(tmp_path: Path) -> None:
    out = tmp_path / "nuclei"
    out.mkdir()  # an existing empty folder is fine
    assert write_synthetic("nuclei", out, 3, size=48, seed=2, splits=None) == {"all": 3}
    found = find_samples(out)
    assert found.layout == "dsb2018"
    assert [s.id for s in found.splits["all"]] == ["nuclei_0000", "nuclei_0001", "nuclei_0002"]
    for sample, (image, labels) in zip(
        found.splits["all"], make_realistic_nuclei(3, size=48, seed=2), strict=True
    ):
        loaded = load_sample(sample)
        assert len(sample.masks) == labels.max()
        np.testing.assert_array_equal(loaded.image, image)
        np.testing.assert_array_equal(loaded.instances, labels)


def test_write_synthetic_refuses_non_empty_output_and_cleans_partial(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic("circles", out, 2, size=16)
    assert (out / "keep.txt").read_text() == "mine"
    stale = tmp_path / "fresh.partial" / "train" / "images"
    stale.mkdir(parents=True)
    (stale / "old.png").write_bytes(b"half")
    write_synthetic("circles", tmp_path / "fresh", 3, size=16)
    assert not (tmp_path / "fresh.partial").exists()
    assert not list((tmp_path / "fresh").rglob("old.png"))


@pytest.mark.parametrize(
    ("n", "splits", "expected"),
    [
        (1, (0.7, 0.15, 0.15), {"train": 1}),
        (3, (0.7, 0.15, 0.15), {"train": 3}),
        (4, (0.5, 0.25, 0.25), {"train": 2, "val": 1, "test": 1}),
        (2, (0.0, 0.5, 0.5), {"train": 1, "val": 1}),
    ],
)
def test_split_counts_always_total_n(
    tmp_path: Path, n: int, splits: tuple[float, float, float], expected: dict[str, int]
) -> None:
    assert write_synthetic("circles", tmp_path / "d", n, size=16, splits=splits) == expected
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(expected)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        write_synthetic("circles", tmp_path / "a", 0)
    with pytest.raises(ConfigError, match="sum"):
        write_synthetic("circles", tmp_path / "b", 4, splits=(0.5, 0.5, 0.5))
