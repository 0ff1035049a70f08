"""Predictor pre-processing and file handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data.transforms import match_channels, normalize_image
from seglab.errors import BundleError, DataError
from seglab.inference import Predictor
from seglab.inference.base import BasePredictor
from seglab.inference.files import collect_inputs
from seglab.models import create_model


def _predictor(input_size: list[int] | None = None, normalize: str = "scale") -> Predictor:
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": 1, "n_filters": 1, "depth": 2}
    meta = {
        "model": {"name": "unet", "kwargs": kwargs},
        "in_channels": 3,
        "preprocessing": {"normalize": normalize, "percentiles": [1, 99], "input_size": input_size},
        "threshold": 0.5,
    }
    return Predictor(create_model("unet", **kwargs), meta, device="cpu")


@pytest.mark.parametrize("shape", [(17, 31, 3), (40, 40), (33, 20, 1), (64, 48, 3)])
def test_any_size_and_channels(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    prediction = _predictor().predict(image)
    assert prediction.probabilities.shape == shape[:2]
    assert prediction.mask.dtype == bool
    assert np.all((prediction.probabilities >= 0) & (prediction.probabilities <= 1))


def test_resize_mode_returns_input_size() -> None:
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    assert _predictor([32, 32]).predict_proba(image).shape == (50, 70)


def test_threshold_override() -> None:
    image = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    predictor = _predictor()
    assert predictor.predict(image, threshold=0.0).mask.all()
    assert not predictor.predict(image, threshold=1.01).mask.any()


def test_normalize_golden_values() -> None:
    image = np.array([[[0], [255]]], dtype=np.uint8)
    assert normalize_image(image).ravel().tolist() == [0.0, 1.0]
    image16 = np.array([[[0], [65535]]], dtype=np.uint16)
    assert normalize_image(image16).ravel().tolist() == [0.0, 1.0]
    ramp = np.arange(101, dtype=np.uint8).reshape(1, 101, 1)
    stretched = normalize_image(ramp, "percentile", (10.0, 90.0))
    # Percentiles of 0..100 are 10 and 90: value 50 maps to (50 - 10) / 80 = 0.5.
    assert stretched[0, 50, 0] == pytest.approx(0.5)
    assert stretched[0, 0, 0] == 0.0 and stretched[0, 100, 0] == 1.0
    assert normalize_image(np.full((2, 2, 1), 7, np.uint8), "percentile").max() == 0.0


def test_match_channels() -> None:
    gray = np.arange(4, dtype=np.uint8).reshape(2, 2, 1)
    assert match_channels(gray, 3).shape == (2, 2, 3)
    rgb = np.stack([np.full((2, 2), v, np.uint8) for v in (0, 30, 60)], axis=2)
    assert match_channels(rgb, 1)[0, 0, 0] == 30


def test_collect_inputs(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    found = collect_inputs([tmp_path / "a.png", str(tmp_path / "*.png"), tmp_path])
    assert found == [tmp_path / "a.png", tmp_path / "b.png"]
    with pytest.raises(DataError, match="nothing"):
        collect_inputs([tmp_path / "nothing*.png"])


def test_missing_bundle_is_clear(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a model bundle"):
        Predictor.from_bundle(tmp_path / "nope")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "seglab.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Predictor.from_bundle(tmp_path / "b")


class _PointwisePredictor(BasePredictor):
    """A pixel-wise "model" (sigmoid of the channel mean), so tiling cannot change it."""

    calls = 0

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return 1 / (1 + np.exp(-(batch.mean(axis=1, keepdims=True) * 6 - 3)))


def test_large_images_go_through_the_sliding_window() -> None:
    meta = {
        "in_channels": 3,
        "threshold": 0.5,
        "preprocessing": {
            "normalize": "scale",
            "percentiles": [1, 99],
            "input_size": None,
            "tile": 64,
        },
    }
    image = np.random.default_rng(2).integers(0, 255, (150, 97, 3), dtype=np.uint8)
    tiled = _PointwisePredictor(meta)
    whole = _PointwisePredictor({**meta, "preprocessing": {**meta["preprocessing"], "tile": 512}})
    assert np.allclose(tiled.predict_proba(image), whole.predict_proba(image), atol=1e-5)
    assert whole.calls == 1
    # 150 x 97 at tile 64, overlap 0.5: 4 x 3 tiles in batches of 4 -> 3 forward calls.
    assert tiled.calls == 3
    tiled.tta = True
    assert tiled.predict_proba(image).shape == (150, 97)
