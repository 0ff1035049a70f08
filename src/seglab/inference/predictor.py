"""`Predictor`: a model plus the pre-processing of its bundle, turning any image into a mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.inference.base import BasePredictor, Prediction

__all__ = ["Prediction", "Predictor", "resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Predictor(BasePredictor):
    """Applies a segmentation model (torch) to images of any size.

    Args:
        model: The network (logits out).
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).
        device: "auto", "cpu", "cuda", ...

    Example:
        >>> predictor = Predictor.from_bundle("runs/demo/run/model")  # doctest: +SKIP
        >>> predictor.predict(image).mask.shape == image.shape[:2]  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, metadata: dict[str, Any], device: str = "auto"):
        super().__init__(metadata)
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "auto") -> Predictor:
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata, device)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, K, H, W) probabilities, with torch."""
        tensor = torch.from_numpy(batch).to(self.device)
        if self.device.type == "cpu":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits = self.model(tensor)
            probabilities = logits.softmax(1) if self.multiclass else torch.sigmoid(logits)
            return probabilities.float().cpu().numpy()
