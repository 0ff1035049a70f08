"""Predict with a classification bundle (task "classification"): class probabilities for images.

Prediction side of `seglab.training.kinds.classification`, which trains: it imports torch, the
bundle and the data readers, never Lightning, MLflow nor the training modules.

Example:
    >>> classifier = Classifier.from_bundle("runs/digits/model")  # doctest: +SKIP
    >>> classifier.predict_proba(images).argmax(1)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.atomic_files import atomic_text_file
from seglab.kinds import CLASSIFICATION

__all__ = ["Classifier", "predict_image_files", "to_tensor", "write_predictions_csv"]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 images -> (N, C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


class Classifier:
    """A trained classifier with its bundle metadata: class probabilities for images.

    Example:
        >>> classifier = load_predictor("runs/digits/model")  # doctest: +SKIP
        >>> classifier.predict_proba(images).argmax(1)  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, metadata: dict[str, Any]) -> None:
        self.model = model.eval()
        self.metadata = metadata
        self.kind = CLASSIFICATION
        self.class_names: list[str] = list(metadata["class_names"])

    @classmethod
    def from_bundle(cls, path: str | Path) -> Classifier:
        """The classifier of a bundle folder (weights on the CPU, eval mode)."""
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata)

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(N, H, W, C) uint8 images -> (N, K) class probabilities."""
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                logits = self.model(to_tensor(images[start : start + batch_size]))
                outputs.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.class_names)))


def write_predictions_csv(
    path: Path, ids: list[str], probabilities: np.ndarray, names: list[str]
) -> None:
    """One row per image: the predicted class and every class probability."""
    with atomic_text_file(path) as f:
        writer = csv.writer(f)
        writer.writerow(["image", "class", *[f"p_{n}" for n in names]])
        for ident, probs in zip(ids, probabilities):
            writer.writerow([ident, names[int(probs.argmax())], *[f"{p:.6f}" for p in probs]])


def predict_image_files(classifier: Classifier, inputs: list[str | Path], out: Path) -> Path:
    """Classify image files (resized to the bundle's size) and write `out/predictions.csv`."""
    from seglab.data.io import read_image
    from seglab.data.transforms import match_channels, resize_image
    from seglab.inference.files import collect_inputs

    pre = classifier.metadata["preprocessing"]
    size = tuple(pre["image_size"])
    paths = collect_inputs(inputs)
    images = []
    for path in paths:
        image = match_channels(read_image(path), int(pre["channels"]))
        if image.shape[:2] != size:
            image = resize_image(image, size)
        if image.dtype != np.uint8:
            image = (image.astype(np.float32) / np.iinfo(image.dtype).max * 255).round()
        images.append(image.astype(np.uint8))
    probabilities = classifier.predict_proba(np.stack(images))
    target = Path(out) / "predictions.csv"
    write_predictions_csv(target, [str(p) for p in paths], probabilities, classifier.class_names)
    return target
