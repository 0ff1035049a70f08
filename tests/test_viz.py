"""Tests of seglab.viz: golden pixels computed by hand, plots written as valid PNGs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.viz import (
    FN_COLOR,
    FP_COLOR,
    MASK_COLOR,
    TP_COLOR,
    atomic_write_bytes,
    confusion_image,
    confusion_legend_html,
    mask_overlay,
    plot_curves,
    plot_threshold,
    save_png,
    to_display,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _read_png(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
    return img


def test_to_display_uint8_is_kept_and_gray_becomes_rgb() -> None:
    gray = np.array([[0, 7], [200, 255]], np.uint8)
    out = to_display(gray)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)
    np.testing.assert_array_equal(to_display(gray[..., None]), out)


def test_to_display_uint16_stretches_between_1st_and_99th_percentile() -> None:
    # Values 0, 10, ..., 1000 (101 samples): 1st percentile = 10, 99th = 990.
    image = (np.arange(101, dtype=np.uint16) * 10)[None, :]
    out = to_display(image)[0, :, 0]
    assert out[0] == 0  # 0 is below the 1st percentile: clipped
    assert out[1] == 0  # 10 -> 0
    assert out[25] == 62  # 250 -> (250 - 10) / 980 * 255 = 62.45
    assert out[99] == 255  # 990 -> 255
    assert out[100] == 255  # 1000 is above the 99th percentile: clipped


@pytest.mark.parametrize("image", [np.full((4, 5), 3.7), np.full((4, 5, 3), 1234, np.uint16)])
def test_to_display_constant_image_is_black(image: np.ndarray) -> None:
    out = to_display(image)
    assert out.shape == (4, 5, 3)
    assert not out.any()


def test_to_display_mostly_flat_image_falls_back_to_min_max() -> None:
    image = np.zeros((20, 20), np.float32)
    image[3, 4] = 0.5  # 1st and 99th percentiles are both 0 here
    out = to_display(image)
    assert out[3, 4, 0] == 255
    assert out.sum() == 3 * 255


def test_to_display_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        to_display(np.zeros((4, 4, 2), np.uint8))


def test_confusion_image_golden_2x2() -> None:
    image = np.full((2, 2), 100, np.uint8)
    truth = np.array([[1, 0], [1, 0]], np.uint8)
    pred = np.array([[1, 1], [0, 0]], bool)
    out = confusion_image(image, truth, pred, alpha=0.2)
    # 0.8 * 100 + 0.2 * colour, rounded.
    assert tuple(out[0, 0]) == (80, 112, 103)  # TP: (80, 80 + 31.6, 80 + 23)
    assert tuple(out[0, 1]) == (123, 99, 80)  # FP: (80 + 42.6, 80 + 18.8, 80)
    assert tuple(out[1, 0]) == (80, 103, 116)  # FN: (80, 80 + 22.8, 80 + 35.6)
    assert tuple(out[1, 1]) == (100, 100, 100)  # TN: untouched


def test_confusion_image_alpha_one_paints_the_pure_colours() -> None:
    truth = np.array([[1, 0, 1, 0]])
    pred = np.array([[1, 1, 0, 0]])
    out = confusion_image(np.zeros((1, 4), np.uint8), truth, pred, alpha=1.0)
    assert [tuple(px) for px in out[0]] == [TP_COLOR, FP_COLOR, FN_COLOR, (0, 0, 0)]


def test_confusion_image_rejects_mismatched_masks() -> None:
    with pytest.raises(ValueError, match="pred"):
        confusion_image(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="alpha"):
        confusion_image(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)), alpha=1.5)


def test_mask_overlay_tints_interior_outlines_edge_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    image[2, 2] = 100
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    out = mask_overlay(image, mask, alpha=0.2)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    ring = mask.copy()
    ring[2, 2] = False
    assert all(tuple(px) == MASK_COLOR for px in out[ring])
    # Centre pixel: 0.8 * 100 + 0.2 * (230, 159, 0) = (126, 111.8, 80).
    assert tuple(out[2, 2]) == (126, 112, 80)


def test_mask_overlay_full_mask_has_no_outline_at_the_image_border() -> None:
    out = mask_overlay(
        np.zeros((3, 3), np.uint8), np.ones((3, 3, 1)), color=(200, 100, 0), alpha=0.5
    )
    assert all(tuple(px) == (100, 50, 0) for px in out.reshape(-1, 3))


def test_save_png_round_trip_creates_parents(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / "a" / "b" / "x.png"
    save_png(path, rgb)
    np.testing.assert_array_equal(np.asarray(_read_png(path)), rgb)
    assert _names(path.parent) == ["x.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_png(path, rgb.astype(np.float32))


def test_atomic_write_keeps_old_file_and_no_temp_when_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"old")

    def broken_replace(self: Path, target: object) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


HISTORY_FULL = [
    {
        "epoch": e,
        "train_loss": 1 / e,
        "val_loss": 1.2 / e + (0.3 if e > 3 else 0.0),  # overfits after epoch 3
        "train_dice": 1 - 0.5 / e,
        "val_dice": 1 - 0.6 / e,
        "lr": 1e-3,
    }
    for e in range(1, 7)
]
HISTORY_SPARSE = [
    {"epoch": 1, "train_loss": 0.9},
    {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "val_dice": 0.4},
    {"epoch": 3, "train_loss": 0.6, "val_loss": math.nan, "val_dice": math.nan},
    {"epoch": 4, "train_loss": 0.5, "val_loss": 0.6, "val_dice": 0.55},
]
HISTORY_LOSS_ONLY = [{"epoch": 0, "train_loss": 0.5}, {"epoch": 1, "train_loss": 0.4}]


@pytest.mark.parametrize("history", [HISTORY_FULL, HISTORY_SPARSE, HISTORY_LOSS_ONLY])
def test_plot_curves_writes_png(tmp_path: Path, history: list[dict[str, float]]) -> None:
    path = tmp_path / "plots" / "curves.png"
    plot_curves(history, path)
    img = _read_png(path)
    assert img.format == "PNG" and img.width > 0 and img.height > 0
    assert _names(path.parent) == ["curves.png"]


def test_plot_curves_rejects_empty_history(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        plot_curves([], tmp_path / "c.png")


def test_plot_threshold_writes_png(tmp_path: Path) -> None:
    t = np.linspace(0.05, 0.95, 19)
    scores = 0.9 - (t - 0.4) ** 2
    scores[3] = np.nan
    path = tmp_path / "threshold.png"
    plot_threshold(t[::-1], scores[::-1], best=0.4, path=path, metric_name="IoU")
    img = _read_png(path)
    assert img.format == "PNG" and img.width > 0 and img.height > 0
    assert _names(tmp_path) == ["threshold.png"]


def test_plot_threshold_and_metric_curves_have_honest_axes(tmp_path: Path) -> None:
    # Scores between 0.93 and 0.985 would fill a fitted axis; on 0-1 they look as close as they are.
    t = np.linspace(0.1, 0.9, 9)
    figure = plot_threshold(t, 0.93 + 0.055 * np.sin(t * np.pi), 0.5, tmp_path / "t.png")
    assert figure.axes[0].get_ylim() == (0.0, 1.0)
    loss, dice = plot_curves(HISTORY_FULL, tmp_path / "c.png").axes
    assert dice.get_ylim() == (0.0, 1.0)
    assert loss.get_ylim() != (0.0, 1.0) and loss.get_ylabel() == "Loss (axis fitted)"


def test_plot_threshold_rejects_mismatched_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="equal length"):
        plot_threshold(np.zeros(3), np.zeros(4), 0.5, tmp_path / "t.png")


def test_confusion_legend_names_the_three_colours() -> None:
    snippet = confusion_legend_html()
    named = (
        (TP_COLOR, "true positive"),
        (FP_COLOR, "false positive"),
        (FN_COLOR, "false negative"),
    )
    for color, name in named:
        assert f"rgb{color}" in snippet and name in snippet
