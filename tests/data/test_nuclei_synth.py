"""The realistic nuclei generator keeps the promises of its docstring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from seglab.cli.main import app
from seglab.data import nuclei_synth
from seglab.data.io import read_image
from seglab.data.layouts import find_samples
from seglab.data.loading import load_sample
from seglab.data.nuclei_synth import place_nuclei, render_nuclei
from seglab.data.nuclei_tissue import (
    HEMATOXYLIN,
    brightfield_clutter,
    fluorescence_clutter,
    glands,
    ihc_tissue,
    membranes,
)
from seglab.data.synthetic import make_realistic_nuclei, write_synthetic
from seglab.errors import ConfigError

MODALITIES = ["fluorescence", "brightfield", "he", "ihc"]


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
        if areas.size:  # near-empty fields may hold none
            diameters.append(2 * np.sqrt(np.median(areas) / np.pi))
    assert min(diameters) < 10 and max(diameters) > 40


@pytest.mark.parametrize("modality", MODALITIES)
def test_each_rendering_has_its_look(modality: str) -> None:
    for index in range(4):
        image, labels = render_nuclei(np.random.default_rng([3, index]), 128, modality)
        assert labels.max() >= 1  # none of these four fields is near-empty
        gray = _luminance(image)
        inside, outside = gray[labels > 0].mean(), gray[labels == 0].mean()
        if modality == "fluorescence":
            assert inside > outside + 10
        elif modality == "ihc":
            # Brown glands may be as dark as the nuclei: these are bluer than their surroundings.
            bluish = image[..., 2].astype(float) - image[..., 0]
            assert bluish[labels > 0].mean() > bluish[labels == 0].mean() + 5
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
    ihc = CliRunner().invoke(app, [*synth, "--modality", "ihc", "--out", str(tmp_path / "c")])
    assert ihc.exit_code == 0, ihc.output
    assert len(list((tmp_path / "c").glob("*/images/*.png"))) == 2
    bad = CliRunner().invoke(app, [*synth, "--modality", "phase", "--out", str(tmp_path / "b")])
    assert isinstance(bad.exception, ConfigError) and "fluorescence" in str(bad.exception)


def _nucleus_and_stained_background(modality: str, seed: int, count: int) -> list[tuple]:
    """(image, labels) of the fields with nuclei among `count` 256-pixel images of a rendering."""
    pairs = [render_nuclei(np.random.default_rng([seed, i]), 256, modality) for i in range(count)]
    return [(image, labels) for image, labels in pairs if labels.max() >= 1]


def test_ihc_has_blue_nuclei_among_brown_stain() -> None:
    pairs = _nucleus_and_stained_background("ihc", 6, 8)
    assert len(pairs) >= 6
    nuclei, stained = [], []
    for image, labels in pairs:
        rgb, gray = image.astype(float), _luminance(image)
        nuclei.append(rgb[labels > 0])
        # The darkest fifth of the background: the DAB-stained glands and membranes.
        dark = (labels == 0) & (gray < np.percentile(gray[labels == 0], 20))
        stained.append(rgb[dark])
    red, _, blue = np.concatenate(nuclei).mean(axis=0)
    assert blue > red + 5  # haematoxylin
    red, _, blue = np.concatenate(stained).mean(axis=0)
    assert red > blue + 10  # DAB brown


@pytest.mark.parametrize("layer", ["ihc", "brightfield"])
def test_some_background_is_stained_as_deeply_as_the_nuclei(layer: str) -> None:
    # DAB glands and membranes (ihc) and debris (bright-field) are label 0: a model must learn
    # that stained is not enough. Without them no background pixel reaches the nuclei's stain.
    draw = {"ihc": ihc_tissue, "brightfield": brightfield_clutter}[layer]
    counts = []
    for index in range(8):
        field = place_nuclei(np.random.default_rng([7, index]), 256)
        if not field.labels.max():
            continue
        density = draw(np.random.default_rng([7, index]), field)
        density = density.mean(axis=2) if density.ndim == 3 else density
        # A nucleus's density: its signal times the haematoxylin stain, at the mid factor 1.6.
        signal = (field.sharp + field.blurred)[field.labels > 0]
        nucleus = np.median(signal) * HEMATOXYLIN.mean() * 1.6
        counts.append(int(np.sum(density[field.labels == 0] >= nucleus)))
    assert len(counts) >= 6
    # At least a small nucleus's area (20 pixels) of such background in most fields.
    assert sum(count >= 20 for count in counts) >= len(counts) // 2 + 1


def test_membranes_run_between_nuclei_and_glands_are_large() -> None:
    outside, inside, gland_sizes = [], [], []
    for index in range(8):
        field = place_nuclei(np.random.default_rng([10, index]), 256)
        if not field.labels.max():
            continue
        lines = membranes(np.random.default_rng([10, index]), field)
        assert lines.max() == pytest.approx(1, abs=1e-3)
        outside.append(lines[field.labels == 0])
        inside.append(lines[field.labels > 0])
        epithelium, _, _ = glands(np.random.default_rng([10, index]), 256, field.diameter)
        regions, count = ndimage.label(epithelium > 0.5)
        largest = np.bincount(regions.ravel())[1:].max() if count else 0
        gland_sizes.append(largest / (np.pi * field.diameter**2 / 4))
    assert np.concatenate(outside).mean() > 1.2 * np.concatenate(inside).mean()
    assert np.median(gland_sizes) >= 4  # the largest gland spans several nuclei


def test_fluorescence_clutter_stays_below_the_dimmest_nucleus() -> None:
    for index in range(10):
        field = place_nuclei(np.random.default_rng([8, index]), 128)
        if not field.labels.max():
            continue
        clutter = fluorescence_clutter(np.random.default_rng([8, index]), field)
        assert clutter.min() >= 0
        assert clutter.max() < 0.5 * field.brightness.min()


def test_near_empty_fields_occur_and_hold_at_most_three_nuclei(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = [place_nuclei(np.random.default_rng([9, i]), 256).labels.max() for i in range(200)]
    # 8 % of fields are near-empty (16 +- 4 of 200); without them these seeds give 3 fields
    # with at most 3 nuclei (large zoom) and none without nuclei.
    assert sum(count <= 3 for count in counts) >= 12
    assert counts.count(0) >= 2
    monkeypatch.setattr(nuclei_synth, "NEAR_EMPTY_SHARE", 1.0)
    for index in range(20):
        for modality in MODALITIES:
            image, labels = render_nuclei(np.random.default_rng([9, index]), 64, modality)
            assert labels.max() <= 3 and image.shape == (64, 64, 3)


def test_an_empty_field_is_written_and_read_as_labelled_background(tmp_path: Path) -> None:
    # Seed 0, image 0 is a field without nuclei (at any size): one all-zero mask file.
    assert make_realistic_nuclei(1, size=48, seed=0)[0][1].max() == 0
    write_synthetic("nuclei", tmp_path / "d", 2, size=48, seed=0, splits=None)
    found = find_samples(tmp_path / "d")
    assert [s.id for s in found.splits["all"]] == ["nuclei_0000", "nuclei_0001"]
    empty = load_sample(found.splits["all"][0])
    assert empty.mask is not None and empty.instances is not None
    assert not empty.mask.any() and not empty.instances.any()
    full = load_sample(found.splits["all"][1])
    assert full.instances is not None
    np.testing.assert_array_equal(np.unique(full.instances), np.arange(full.instances.max() + 1))
