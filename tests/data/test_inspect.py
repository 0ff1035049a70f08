"""Dataset inspection: statistics computed by hand on tiny datasets, figures, the CLI table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from seglab.data.inspect import (
    class_weights,
    format_inspection,
    inspect_dataset,
    save_dataset_grid,
    save_sample_grid,
)
from seglab.data.io import write_png
from seglab.data.layouts import find_samples
from seglab.data.loading import load_samples
from seglab.data.synthetic import write_synthetic


@pytest.fixture
def folders_dataset(tmp_path: Path) -> Path:
    """Image a: 4x4 gray 8-bit, 4 foreground pixels; b: 2x4 RGB 16-bit, 6 foreground pixels."""
    mask_a = np.zeros((4, 4), np.uint8)
    mask_a[:2, :2] = 255
    mask_b = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.uint8)
    write_png(tmp_path / "images" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "images" / "b.png", np.full((2, 4, 3), 1000, np.uint16))
    write_png(tmp_path / "masks" / "a.png", mask_a)
    write_png(tmp_path / "masks" / "b.png", mask_b)
    return tmp_path


def test_inspect_folders_golden_values(folders_dataset: Path) -> None:
    report = inspect_dataset(folders_dataset)
    assert report["layout"] == "folders"
    assert report["splits"] == {"all": 2}
    assert report["num_images"] == report["num_labelled"] == 2
    assert report["height"] == {"min": 2, "max": 4}
    assert report["width"] == {"min": 4, "max": 4}
    assert report["distinct_sizes"] == 2
    assert report["channels"] == {1: 1, 3: 1}
    assert report["bit_depths"] == {8: 1, 16: 1}
    # Per image: 4/16 = 0.25 and 6/8 = 0.75; over all pixels: 10/24.
    assert report["foreground_fraction_mean"] == pytest.approx(0.5)
    assert report["foreground_fraction_pixels"] == pytest.approx(10 / 24)
    # 14 background, 10 foreground, 24 pixels: w = 24/(2*14) = 6/7 and 24/(2*10) = 6/5, which
    # sum to 72/35; normalised: (6/7)/(72/35) = 5/12 and (6/5)/(72/35) = 7/12.
    assert report["class_weights"] == pytest.approx({"background": 5 / 12, "foreground": 7 / 12})
    assert report["instances_per_image"] is None
    assert report["skipped"] == []


def test_class_weights_by_inverse_frequency() -> None:
    # 75 background, 25 foreground: 100/150 = 2/3 and 100/50 = 2 -> normalised 1/4 and 3/4.
    assert class_weights(75, 25) == pytest.approx({"background": 0.25, "foreground": 0.75})
    assert class_weights(10, 0) is None


def test_inspect_dsb2018_counts_instances_and_unlabelled_images(tmp_path: Path) -> None:
    nucleus = np.zeros((4, 4), np.uint8)
    for sample_id, count in (("s1", 2), ("s2", 3), ("u", 0)):
        write_png(tmp_path / sample_id / "images" / f"{sample_id}.png", np.zeros((4, 4), np.uint8))
        for k in range(count):
            nucleus[:] = 0
            nucleus[k, :2] = 255
            write_png(tmp_path / sample_id / "masks" / f"{sample_id}_{k}.png", nucleus)
    (tmp_path / "bad" / "images").mkdir(parents=True)
    (tmp_path / "bad" / "images" / "bad.png").write_text("not an image")
    report = inspect_dataset(tmp_path)
    assert report["layout"] == "dsb2018"
    assert report["num_images"] == 3 and report["num_labelled"] == 2
    assert report["instances_per_image"] == pytest.approx(2.5)
    # s1: 4 of 16 pixels, s2: 6 of 16.
    assert report["foreground_fraction_pixels"] == pytest.approx(10 / 32)
    assert [Path(s["path"]).name for s in report["skipped"]] == ["bad.png"]


def test_save_sample_grid_and_table(tmp_path: Path) -> None:
    write_synthetic("nuclei", tmp_path / "data", 3, size=32, splits=None)
    samples, _ = load_samples(find_samples(tmp_path / "data").splits["all"])
    out = tmp_path / "figs" / "grid.png"
    save_sample_grid(samples, out, n=8)
    with Image.open(out) as image:
        assert image.size[0] > image.size[1] > 100
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]
    with pytest.raises(ValueError, match="at least one"):
        save_sample_grid([], out)

    console = Console(record=True, width=120)
    console.print(format_inspection(inspect_dataset(tmp_path / "data")))
    text = console.export_text()
    assert "dsb2018" in text and "class weights" in text and "instances per image" in text


def test_inspect_cityscapes_reports_class_fractions(tmp_path: Path) -> None:
    from seglab.data.streets import write_streets

    write_streets(tmp_path / "streets", 4, height=32, width=64, seed=0)
    report = inspect_dataset(tmp_path / "streets")
    assert report["layout"] == "cityscapes" and report["num_labelled"] == 4
    fractions = report["class_fractions"]
    assert list(fractions) == [
        "flat",
        "construction",
        "object",
        "nature",
        "sky",
        "human",
        "vehicle",
    ]
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert report["foreground_fraction_mean"] is None and report["class_weights"] is None
    save_dataset_grid(tmp_path / "streets", tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
