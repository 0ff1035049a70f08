"""The realistic nuclei generator keeps the promises of its docstring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from seglab.cli.main import app
from seglab.data.io import read_image
from seglab.data.layouts import find_samples
from seglab.data.nuclei_synth import place_nuclei, render_nuclei
from seglab.data.synthetic import make_realistic_nuclei, write_synthetic
from seglab.errors import ConfigError

MODALITIES = ["fluorescence", "brightfield", "he"]


def _luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(float).mean(axis=2)


@pytest.mark.parametrize("modality", [*MODALITIES, "mixed"])
def test_same_seed_same_images_and_index_independent(modality: str) -> None:
    first = make_realistic_nuclei(3, size=64, seed=4, modality=modality)
    again = make_realistic_nuclei(5, size=64, seed=4, modality=modality)[:3]
    other = make_realistic_nuclei(1, size=64, seed=5, modality=modality)[0]
    for (image, labels), (image2, labels2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(first[0][0], other[0])


@pytest.mark.parametrize("index", range(6))
def test_labels_are_consecutive_instance_ids(index: int) -> None:
    image, labels = render_nuclei(np.random.default_rng([0, index]), 96)
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2]
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    present = np.unique(labels)
    assert present[0] == 0 and labels.max() >= 1
    np.testing.assert_array_equal(present, np.arange(labels.max() + 1))


@pytest.mark.parametrize("index", range(8))
def test_each_image_spans_a_wide_brightness_range(index: int) -> None:
    field = place_nuclei(np.random.default_rng([1, index]), 256)
    assert field.labels.max() >= 2
    assert field.brightness.max() / field.brightness.min() >= 8  # drawn span is 8..15
    # In the rendered image too: the brightest nucleus's mean over the dimmest's, background off.
    image, labels = render_nuclei(np.random.default_rng([1, index]), 256, "fluorescence")
    gray = _luminance(image)
    background = np.median(gray[labels == 0])
    means = ndimage.mean(gray, labels, np.arange(1, labels.max() + 1)) - background
    big = ndimage.sum(np.ones_like(gray), labels, np.arange(1, labels.max() + 1)) >= 30
    assert means[big].max() / max(means[big].min(), 1.0) >= 4


def test_nucleus_sizes_cover_a_wide_range_across_images() -> None:
    diameters = []
    for index in range(40):
        labels = place_nuclei(np.random.default_rng([2, index]), 256).labels
        areas = np.bincount(labels.ravel())[1:]
        diameters.append(2 * np.sqrt(np.median(areas) / np.pi))
    assert min(diameters) < 10 and max(diameters) > 40


@pytest.mark.parametrize("modality", MODALITIES)
def test_each_rendering_has_its_look(modality: str) -> None:
    for index in range(4):
        image, labels = render_nuclei(np.random.default_rng([3, index]), 128, modality)
        gray = _luminance(image)
        inside, outside = gray[labels > 0].mean(), gray[labels == 0].mean()
        if modality == "fluorescence":
            assert inside > outside + 10
        else:
            assert inside < outside - 10
        if modality == "he":
            red, green = image[..., 0][labels == 0].mean(), image[..., 1][labels == 0].mean()
            assert red > green + 15  # pink eosin


def test_sixteen_bits() -> None:
    image, labels = make_realistic_nuclei(1, size=64, seed=0, bit_depth=16)[0]
    assert image.dtype == np.uint16
    assert image.max() > 255  # uses the range above 8 bits
    eight, labels8 = make_realistic_nuclei(1, size=64, seed=0, bit_depth=8)[0]
    assert eight.dtype == np.uint8
    np.testing.assert_array_equal(labels, labels8)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modality"):
        make_realistic_nuclei(1, modality="phase")
    with pytest.raises(ValueError, match="8 or 16"):
        make_realistic_nuclei(1, bit_depth=12)
    with pytest.raises(ConfigError, match="8 or 16"):
        write_synthetic("nuclei", tmp_path / "a", 2, bit_depth=12)
    with pytest.raises(ConfigError, match="nuclei only"):
        write_synthetic("circles", tmp_path / "b", 2, modality="he")


def test_write_sixteen_bit_he(tmp_path: Path) -> None:
    out = tmp_path / "he"
    write_synthetic("nuclei", out, 2, size=48, seed=1, splits=None, modality="he", bit_depth=16)
    found = find_samples(out)
    assert found.layout == "dsb2018" and len(found.splits["all"]) == 2


def test_cli_takes_modality_and_bit_depth_and_refuses_bad_ones(tmp_path: Path) -> None:
    synth = ["data", "synth", "--kind", "nuclei", "--n", "2", "--size", "32", "--no-split"]
    ok = CliRunner().invoke(
        app, [*synth, "--modality", "he", "--bit-depth", "16", "--out", str(tmp_path / "a")]
    )
    assert ok.exit_code == 0, ok.output
    image = read_image(next((tmp_path / "a").glob("*/images/*.png")))
    assert image.dtype == np.uint16
    bad = CliRunner().invoke(app, [*synth, "--modality", "phase", "--out", str(tmp_path / "b")])
    assert isinstance(bad.exception, ConfigError) and "fluorescence" in str(bad.exception)
