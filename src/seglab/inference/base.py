"""Backend-free prediction: a bundle's pre-processing, thresholding and instances around any
forward pass (torch or ONNX Runtime). Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seglab.data.transforms import (
    match_channels,
    normalize_image,
    reflect_pad,
    resize_image,
    round_up,
)
from seglab.data.views import make_views
from seglab.errors import SeglabError
from seglab.kinds import kind_of

if TYPE_CHECKING:
    from seglab.inference.sliding_window import StopCheck


@dataclass
class Prediction:
    """Outputs for one image.

    Binary models: foreground probabilities (H, W) float32, the thresholded boolean mask and,
    when asked for, instance labels (H, W) int32 (0 = background, 1..N); a boundary-aware
    model's border probabilities (H, W) as `borders`, which its instances are split along.
    Multi-class models: class probabilities (C, H, W) float32 and the argmax class indices
    (H, W) uint8 as `mask`.
    """

    probabilities: np.ndarray
    mask: np.ndarray
    instances: np.ndarray | None = None
    borders: np.ndarray | None = None


# The largest side predicted in one pass when the bundle does not say: ~0.5 GB of activations
# for the default U-Net on a CPU.
DEFAULT_TILE = 1024

# Below this side an image holds too little context for a U-Net (and a 1×N "image" is usually a
# mistake, or an attempt to make the sliding window run for hours).
MIN_SIDE = 4


def model_divisor(metadata: dict[str, Any]) -> int:
    """What a bundle's network needs its input sides to be a multiple of (2**depth).

    Bundles record it since seglab pads inputs itself; older ones are derived from the model's
    depth (UNet's default 4; UNetMini's 2 poolings divide 16 as well).
    """
    recorded = metadata["preprocessing"].get("divisor")
    if recorded:
        return int(recorded)
    return 2 ** int(metadata.get("model", {}).get("kwargs", {}).get("depth", 4))


class BasePredictor:
    """Applies a binary segmentation model to images of any size; subclasses provide `forward`.

    Args:
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).
    """

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        pre = metadata["preprocessing"]
        self.normalize = pre["normalize"]
        self.percentiles = tuple(pre["percentiles"])
        self.input_size = tuple(pre["input_size"]) if pre.get("input_size") else None
        self.channels = int(pre.get("channels") or metadata["in_channels"])
        self.views = list(pre.get("views") or ["raw"])
        self.threshold = float(metadata["threshold"])
        # Multi-class models end in a softmax over their channels, binary ones in a sigmoid.
        self.kind = kind_of(metadata)
        # Inputs larger than the tile are predicted tile by tile with Gaussian blending, so
        # memory depends on the tile and batch, not on the image.
        self.tile: int | None = pre.get("tile") or DEFAULT_TILE
        self.divisor = model_divisor(metadata)
        self.overlap = 0.5
        self.batch_size = 4
        self.tta = False

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(1, C, H, W) float32 input -> (1, K, H, W) float32 probabilities (sigmoid, or
        softmax over K for multi-class models)."""
        raise NotImplementedError

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) or (H, W) image -> (1, C', H', W') float32 model input."""
        if image.ndim == 2:
            image = image[:, :, None]
        image = match_channels(image, self.channels)
        if self.input_size is not None and image.shape[:2] != self.input_size:
            image = resize_image(image, self.input_size)
        data = make_views(normalize_image(image, self.normalize, self.percentiles), self.views)
        return np.ascontiguousarray(data.transpose(2, 0, 1)[None], dtype=np.float32)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Foreground probabilities (H, W) float32 for an (H, W, C) or (H, W) image."""
        return self.predict_channels(image)[0]

    def predict_channels(self, image: np.ndarray, stop: StopCheck | None = None) -> np.ndarray:
        """Probabilities of every output channel (see metadata "outputs"), (C, H, W) float32.

        Args:
            image: (H, W, C) or (H, W) image.
            stop: Asked before the network runs and between batches of tiles; a reason it
                gives ends the prediction with `InferenceStoppedError` (a server's deadline).
        """
        from seglab.inference.sliding_window import (
            flip_tta,
            raise_if_stopped,
            sliding_window_predict,
            stopping_progress,
        )

        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise SeglabError(
                f"the image is {width}x{height} (WxH) pixels; segmentation needs at least "
                f"{MIN_SIDE} on each side"
            )
        raise_if_stopped(stop)
        batch = self.preprocess(image)
        forward = flip_tta(self.forward, 2) if self.tta else self.forward
        if self.tile is not None and max(batch.shape[2:]) > self.tile:
            side = round_up(self.tile, self.divisor)
            # Along a side shorter than the tile the tile shrinks to it (rounded up to the
            # network's multiple): a 4 x 100000 strip costs its own pixels, not 1024 x 100000.
            tile = tuple(min(side, round_up(s, self.divisor)) for s in batch.shape[2:])
            progress = stopping_progress(stop)
            probabilities = sliding_window_predict(
                batch[0], forward, tile, self.overlap, self.batch_size, progress=progress
            )
        else:
            # Reflection up to the network's multiple (see `reflect_pad`), then cropped back.
            sides = tuple(round_up(s, self.divisor) for s in batch.shape[2:])
            probabilities = forward(reflect_pad(batch, sides))[0][
                :, : batch.shape[2], : batch.shape[3]
            ]
        if probabilities.shape[1:] != (height, width):
            resized = resize_image(probabilities.transpose(1, 2, 0), (height, width))
            probabilities = resized.transpose(2, 0, 1)
        return np.ascontiguousarray(probabilities, dtype=np.float32)

    def predict(
        self,
        image: np.ndarray,
        threshold: float | None = None,
        instances: bool = False,
        stop: StopCheck | None = None,
    ) -> Prediction:
        """Probabilities, the mask at the tuned threshold (or `threshold`) and, with
        `instances`, one label per object by the bundle's post-processing; for multi-class
        models, every class's probabilities and the argmax classes. `stop` as in
        `predict_channels`."""
        channels = self.predict_channels(image, stop)
        if self.kind.multiclass:
            return Prediction(channels, channels.argmax(0).astype(np.uint8))
        probabilities = channels[0]
        cut = self.threshold if threshold is None else threshold
        # Compared in float64, as the threshold was tuned (NumPy would otherwise use float32).
        mask = probabilities >= np.float64(cut)
        borders = channels[1] if len(channels) > 1 else None
        labels = self.instances_from(mask, borders) if instances else None
        return Prediction(probabilities, mask, labels, borders)

    def colour(self, mask: np.ndarray) -> np.ndarray:
        """Class indices (H, W) of a multi-class model -> (H, W, 3) uint8 in its palette."""
        from seglab.data.labels import colorize

        labels = self.metadata["labels"]
        palette = np.asarray(labels["palette"], np.uint8)
        return colorize(mask, palette, int(labels["ignore_index"]))

    def class_fractions(self, mask: np.ndarray) -> dict[str, float]:
        """Share of the image predicted as each class of a multi-class model."""
        names = list(self.metadata["labels"]["names"])
        counts = np.bincount(mask.ravel(), minlength=len(names))[: len(names)]
        return {name: float(c) / mask.size for name, c in zip(names, counts)}

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
