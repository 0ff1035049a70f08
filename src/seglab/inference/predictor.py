"""`Predictor`: a model plus the pre-processing of its bundle, turning any image into a mask."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.inference.base import BasePredictor, Prediction
from seglab.precision import autocast, channels_last_format, inference_dtype

__all__ = ["Prediction", "Predictor", "resolve_device", "torch_forward"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def torch_forward(
    model: torch.nn.Module,
    device: str = "auto",
    multiclass: bool = False,
    precision: str = "auto",
) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy forward around a torch model of images or volumes: `(N, C, *spatial)` float32 in,
    `(N, K, *spatial)` float32 probabilities out (sigmoid, or softmax over K for multi-class).

    Eval and inference mode, the channels-last layout (oneDNN's and cuDNN's fastest), bf16
    autocast where the hardware has it (`precision`, see `seglab.precision.inference_dtype`),
    and on a GPU page-locked inputs copied without blocking.
    """
    target = resolve_device(device)
    dtype = inference_dtype(precision, target)
    model = model.eval().to(target)
    weights = next(model.parameters(), None)
    if weights is not None:
        model = model.to(memory_format=channels_last_format(weights.ndim))  # type: ignore[call-overload]

    def forward(batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch)
        if target.type == "cuda":
            tensor = tensor.pin_memory().to(target, non_blocking=True)
        else:
            tensor = tensor.to(target)
        tensor = tensor.contiguous(memory_format=channels_last_format(tensor.ndim))
        with torch.inference_mode():
            with autocast(target, dtype):
                logits = model(tensor)
            logits = logits.float()
            probabilities = logits.softmax(1) if multiclass else torch.sigmoid(logits)
            return probabilities.cpu().contiguous().numpy()

    return forward


class Predictor(BasePredictor):
    """Applies a segmentation model (torch) to images of any size.

    Args:
        model: The network (logits out).
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).
        device: "auto", "cpu", "cuda", ...
        precision: "auto" (bf16 where the CPU or GPU computes it natively, else fp32; fp16 on
            GPUs without bf16), "32" or "bf16".

    Example:
        >>> predictor = Predictor.from_bundle("runs/demo/run/model")  # doctest: +SKIP
        >>> predictor.predict(image).mask.shape == image.shape[:2]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        metadata: dict[str, Any],
        device: str = "auto",
        precision: str = "auto",
    ):
        super().__init__(metadata)
        self.device = resolve_device(device)
        self.model = model
        self._forward = torch_forward(model, device, self.kind.multiclass, precision)

    @classmethod
    def from_bundle(
        cls, path: str | Path, device: str = "auto", precision: str = "auto"
    ) -> Predictor:
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata, device, precision)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, K, H, W) probabilities, with torch."""
        return self._forward(batch)
