"""`Predictor`: a model plus the pre-processing of its bundle, turning any image into a mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.data.transforms import match_channels, normalize_image, resize_image
from seglab.data.views import make_views


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
        self.channels = int(pre.get("channels") or metadata["in_channels"])
        self.views = list(pre.get("views") or ["raw"])
        self.threshold = float(metadata["threshold"])

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "auto") -> Predictor:
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata, device)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Foreground probabilities (H, W) float32 for an (H, W, C) or (H, W) image."""
        return self.predict_channels(image)[0]

    def predict_channels(self, image: np.ndarray) -> np.ndarray:
        """Probabilities of every output channel (see metadata "outputs"), (C, H, W) float32."""
        if image.ndim == 2:
            image = image[:, :, None]
        height, width = image.shape[:2]
        image = match_channels(image, self.channels)
        if self.input_size is not None and (height, width) != self.input_size:
            image = resize_image(image, self.input_size)
        data = make_views(normalize_image(image, self.normalize, self.percentiles), self.views)
        batch = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None]
        batch = batch.to(self.device)
        if self.device.type == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            probabilities = torch.sigmoid(self.model(batch))[0].float().cpu().numpy()
        if probabilities.shape[1:] != (height, width):
            resized = resize_image(probabilities.transpose(1, 2, 0), (height, width))
            probabilities = resized.transpose(2, 0, 1)
        return np.ascontiguousarray(probabilities, dtype=np.float32)

    def predict(
        self, image: np.ndarray, threshold: float | None = None, instances: bool = False
    ) -> Prediction:
        """Probabilities, the mask at the tuned threshold (or `threshold`) and, with
        `instances`, one label per object by the bundle's post-processing."""
        channels = self.predict_channels(image)
        probabilities = channels[0]
        cut = self.threshold if threshold is None else threshold
        # Compared in float64, as the threshold was tuned (NumPy would otherwise use float32).
        mask = probabilities >= np.float64(cut)
        labels = None
        if instances:
            labels = self.instances_from(mask, channels[1] if len(channels) > 1 else None)
        return Prediction(probabilities, mask, labels)

    def instances_from(self, mask: np.ndarray, borders: np.ndarray | None = None) -> np.ndarray:
        """Instance labels (H, W) int32 from a mask, with the bundle's instance settings.

        With the border probabilities of a boundary-aware model, the watershed is seeded by
        "foreground minus borders" and floods along the border probability.
        """
        from seglab.config import InstanceConfig
        from seglab.postprocess import instances_from_mask

        settings = InstanceConfig(**self.metadata.get("instances", {}))
        if borders is None:
            return instances_from_mask(mask, settings)
        return instances_from_mask(mask, settings, seeds=mask & (borders < 0.5), elevation=borders)


def load_predictor(model: str | Path, device: str = "auto") -> Any:
    """A predictor for a bundle folder, or for a baseline by name (e.g. "otsu": no training).

    Baselines and networks share the interface `predict(image, threshold=None, instances=False)
    -> Prediction`, `.threshold` and `.metadata`.
    """
    from seglab.baseline import BASELINES, create_baseline
    from seglab.bundle import read_metadata

    path = Path(model)
    if not path.exists() and str(model) in BASELINES:
        return create_baseline(str(model))
    metadata = read_metadata(path)
    name = metadata["model"]["name"]
    if name in BASELINES:
        return create_baseline(name, **metadata["model"]["kwargs"])
    if metadata.get("task") == "classification":
        from seglab.bundle import load_bundle
        from seglab.classification import Classifier

        network, metadata = load_bundle(path)
        return Classifier(network, metadata)
    return Predictor.from_bundle(path, device)
