"""Evaluation outputs and their values, with a predictor whose masks are known."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seglab.data.loading import LoadedSample
from seglab.evaluation.segmentation import evaluate_samples
from seglab.inference import Prediction
from seglab.kinds import BINARY, Kind


@dataclass
class FixedPredictor:
    """Predicts the masks it was given, by sample image identity."""

    masks: dict[int, np.ndarray]
    threshold: float = 0.5
    kind: Kind = BINARY
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.metadata = {"model": {"name": "fixed"}}

    def predict(self, image: np.ndarray, instances: bool = False) -> Prediction:
        mask = self.masks[int(image[0, 0, 0])]
        return Prediction(mask.astype(np.float32), mask)


def _sample(index: int, truth: np.ndarray) -> LoadedSample:
    image = np.full((*truth.shape, 3), index, dtype=np.uint8)
    return LoadedSample(id=f"img{index}", image=image, mask=truth, instances=None)


def test_metrics_per_image_and_outputs(tmp_path: Path) -> None:
    # Image 0: truth 4 pixels, prediction 2 of them + 2 others -> tp 2, fp 2, fn 2, tn 10.
    truth0 = np.zeros((4, 4), bool)
    truth0[0, :] = True
    pred0 = np.zeros((4, 4), bool)
    pred0[0, :2] = True
    pred0[1, :2] = True
    # Image 1: both empty -> every score 1 by convention; tn 16.
    empty = np.zeros((4, 4), bool)
    predictor = FixedPredictor({0: pred0, 1: empty})
    result = evaluate_samples(predictor, [_sample(0, truth0), _sample(1, empty)], tmp_path)

    first, second = result.per_image
    assert first["dice"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))  # 0.5
    assert first["iou"] == pytest.approx(2 / 6)
    assert (first["tp"], first["fp"], first["fn"], first["tn"]) == (2, 2, 2, 10)
    assert second["dice"] == 1.0 and second["iou"] == 1.0
    # Dataset level sums counts first: tp 2, fp 2, fn 2, tn 26.
    assert result.metrics["dice"] == pytest.approx(0.5)
    assert result.metrics["pixel_accuracy"] == pytest.approx(28 / 32)
    assert result.metrics["dice_per_image"] == pytest.approx((0.5 + 1.0) / 2)
    assert result.metrics["n_images"] == 2

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["dice"] == pytest.approx(0.5)
    with (tmp_path / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["img0", "img1"]
    assert float(rows[0]["iou"]) == pytest.approx(1 / 3, abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "confusion").iterdir()) == ["img0.png", "img1.png"]
    report = (tmp_path / "report.html").read_text()
    assert "img0" in report and "data:image/png;base64," in report
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["img0.png", "img1.png"]
    # Hardest first: img0 (Dice 0.5) before img1 (Dice 1); the header counts both images.
    assert report.index("img0 — dice 0.500") < report.index("img1 — dice 1.000")
    assert "<b>Images</b>2<" in report and "<b>Model</b>fixed<" in report


def test_unlabelled_samples_only_is_an_error(tmp_path: Path) -> None:
    from seglab.errors import DataError

    sample = LoadedSample(id="x", image=np.zeros((4, 4, 3), np.uint8), mask=None, instances=None)
    with pytest.raises(DataError, match="no labelled image"):
        evaluate_samples(FixedPredictor({}), [sample], tmp_path)


def test_a_reused_out_folder_keeps_no_picture_of_the_earlier_evaluation(tmp_path: Path) -> None:
    truth = np.zeros((4, 4), bool)
    truth[0, :] = True
    predictor = FixedPredictor({0: truth, 1: truth})
    evaluate_samples(predictor, [_sample(0, truth), _sample(1, truth)], tmp_path)
    evaluate_samples(predictor, [_sample(1, truth)], tmp_path)
    assert [p.name for p in (tmp_path / "confusion").iterdir()] == ["img1.png"]


def test_an_out_folder_that_holds_no_evaluation_is_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "confusion" / "mine.png"
    mine.parent.mkdir()
    mine.write_bytes(b"user file")
    truth = np.zeros((4, 4), bool)
    evaluate_samples(FixedPredictor({0: truth}), [_sample(0, truth)], tmp_path)
    assert mine.read_bytes() == b"user file"
