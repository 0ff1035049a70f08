"""`Predictor`: a model plus the pre-processing of its bundle, turning any image into a mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.transforms import match_channels, normalize_image, resize_image


@dataclass
class Prediction:
    """Outputs for one image: foreground probabilities (H, W) float32, the thresholded mask and,
    when asked for, instance labels (H, W) int32 (0 = background, 1..N)."""

    probabilities: np.ndarray
    mask: np.ndarray
    instances: np.ndarray | None = None


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Predictor:
    """Applies a binary segmentation model to images of any size.

    Args:
        model: The network (logits out).
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).
        device: "auto", "cpu", "cuda", ...

    Example:
        >>> predictor = Predictor.from_bundle("runs/demo/run/model")  # doctest: +SKIP
        >>> predictor.predict(image).mask.shape == image.shape[:2]  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, metadata: dict[str, Any], device: str = "auto"):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.metadata = metadata
        pre = metadata["preprocessing"]
        self.normalize = pre["normalize"]
        self.percentiles = tuple(pre["percentiles"])
        self.input_size = tuple(pre["input_size"]) if pre.get("input_size") else None
        self.in_channels = int(metadata["in_channels"])
        self.threshold = float(metadata["threshold"])

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "auto") -> Predictor:
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata, device)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Foreground probabilities (H, W) float32 for an (H, W, C) or (H, W) image."""
        if image.ndim == 2:
            image = image[:, :, None]
        height, width = image.shape[:2]
        image = match_channels(image, self.in_channels)
        if self.input_size is not None and (height, width) != self.input_size:
            image = resize_image(image, self.input_size)
        data = normalize_image(image, self.normalize, self.percentiles)
        batch = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None]
        batch = batch.to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            probabilities = torch.sigmoid(self.model(batch))[0, 0].float().cpu().numpy()
        if probabilities.shape != (height, width):
            probabilities = resize_image(probabilities[:, :, None], (height, width))[:, :, 0]
        return np.ascontiguousarray(probabilities, dtype=np.float32)

    def predict(self, image: np.ndarray, threshold: float | None = None) -> Prediction:
        """Probabilities and the mask at the bundle's tuned threshold (or `threshold`)."""
        probabilities = self.predict_proba(image)
        cut = self.threshold if threshold is None else threshold
        # Compared in float64, as the threshold was tuned (NumPy would otherwise use float32).
        return Prediction(probabilities, probabilities >= np.float64(cut))
