"""Images of any size and background: inputs are padded by reflection, never with zeros.

A "dark object" detector stands in for a U-Net trained on bright-field nuclei: its logit is high
where a 3×3 neighbourhood is dark. Zero padding of a bright image would mark the padded margin
as objects; reflection continues the background, so a crop predicts what the whole image
predicts away from the crop's border, in the torch and ONNX Runtime backends and in the sliding
window alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.inference import Predictor
from seglab.inference.onnx_backend import OnnxPredictor
from seglab.inference.sliding_window import reflect_pad


class Detector(nn.Module):
    """Logit 40 · (0.5 − 3×3 mean) for dark objects, or the opposite sign for bright ones."""

    divisor = 16

    def __init__(self, dark: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="replicate")
        sign = -1.0 if dark else 1.0
        with torch.no_grad():
            self.conv.weight.fill_(sign * 40.0 / 9)
            self.conv.bias.fill_(-sign * 20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise AssertionError(f"the predictor did not pad {tuple(x.shape)} to a multiple of 16")
        return self.conv(x)


def metadata() -> dict[str, Any]:
    return {
        "model": {"name": "detector", "kwargs": {}},
        "in_channels": 1,
        "preprocessing": {
            "normalize": "scale",
            "percentiles": [1, 99],
            "channels": 1,
            "divisor": 16,
            "tile": 1024,
        },
        "threshold": 0.5,
    }


def nuclei_image(shape: tuple[int, int], bright_field: bool) -> np.ndarray:
    """Round nuclei on a flat background: dark on light (bright-field) or light on dark."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    objects = np.zeros(shape, bool)
    for _ in range(shape[0] * shape[1] // 900):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        objects |= (rows - r) ** 2 + (cols - c) ** 2 <= 36
    background, nucleus = (225, 40) if bright_field else (15, 200)
    return np.where(objects, nucleus, background).astype(np.uint8)


def onnx_predictor(model: nn.Module, folder: Path) -> OnnxPredictor:
    path = folder / "detector.onnx"
    example = torch.zeros(1, 1, 32, 48)
    wrapped = nn.Sequential(model, nn.Sigmoid())
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}}
    torch.onnx.export(
        wrapped, (example,), str(path), input_names=["image"], dynamic_axes=dynamic, dynamo=False
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return OnnxPredictor(session, metadata())


def predictors(bright_field: bool, folder: Path) -> dict[str, Any]:
    model = Detector(dark=bright_field).eval()
    torch_predictor = Predictor(model, metadata(), device="cpu", precision="32")
    window = Predictor(model, metadata(), device="cpu", precision="32")
    window.tile = 64  # 118, 261 and 347 are all larger: the sliding window path
    return {"torch": torch_predictor, "onnx": onnx_predictor(model, folder), "window": window}


@pytest.mark.parametrize("bright_field", [True, False], ids=["bright-field", "fluorescence"])
@pytest.mark.parametrize("crop", [(118, 118), (261, 347)])
def test_a_crop_predicts_what_the_whole_image_predicts(
    bright_field: bool, crop: tuple[int, int], tmp_path: Path
) -> None:
    full = nuclei_image((288, 368), bright_field)
    part = full[: crop[0], : crop[1]]
    for name, predictor in predictors(bright_field, tmp_path).items():
        whole = predictor.predict(full).mask
        cropped = predictor.predict(part).mask
        assert cropped.shape == crop, name
        # The detector sees one pixel around each pixel: only the crop's last row and column
        # may differ from the whole image.
        inner = (slice(0, crop[0] - 1), slice(0, crop[1] - 1))
        np.testing.assert_array_equal(cropped[inner], whole[inner], err_msg=name)
        assert 0.01 < whole.mean() < 0.5, name  # the check means something: objects are found


def test_zero_padding_would_have_invented_objects() -> None:
    # The sensitivity of the test above: the same detector on a zero-padded bright crop marks
    # the whole padded margin, while the reflected padding marks nothing there.
    model = Detector(dark=True).eval()
    part = nuclei_image((288, 368), bright_field=True)[:118, :118].astype(np.float32) / 255
    zeros = np.zeros((1, 1, 128, 128), np.float32)
    zeros[0, 0, :118, :118] = part
    reflected = reflect_pad(part[None, None], (128, 128))
    with torch.no_grad():
        margin_zero = model(torch.from_numpy(zeros))[0, 0, 119:, 119:] > 0
        margin_reflect = model(torch.from_numpy(reflected))[0, 0, 119:, 119:] > 0
    assert margin_zero.all()
    assert margin_reflect.float().mean() < 0.2


@pytest.mark.parametrize("shape", [(1, 500), (600, 2), (3, 3)])
def test_images_too_thin_to_segment_are_refused(shape: tuple[int, int], tmp_path: Path) -> None:
    predictor = predictors(True, tmp_path)["torch"]
    with pytest.raises(SeglabError, match="at least 4 on each side"):
        predictor.predict(np.full(shape, 200, np.uint8))


def test_sixteen_bit_images_of_odd_sizes(tmp_path: Path) -> None:
    image = nuclei_image((261, 347), bright_field=True).astype(np.uint16) * 257
    for name, predictor in predictors(True, tmp_path).items():
        mask = predictor.predict(image).mask
        expected = predictor.predict((image // 257).astype(np.uint8)).mask
        np.testing.assert_array_equal(mask, expected, err_msg=name)
