"""Classical baselines: segmentation by image processing alone, no training (seed 003).

A baseline quacks like a trained `Predictor`: `predict(image) -> Prediction`, a `.threshold`
and a bundle-style `.metadata`, so evaluation, prediction and reports take either. Its metadata
describes it completely, so it can be saved as a bundle folder holding only ``seglab.json``.

Example:
    >>> from seglab.data.synthetic import make_nuclei
    >>> image, _ = make_nuclei(1, size=64)[0]
    >>> baseline = create_baseline("otsu", sigma=1.0)
    >>> baseline.predict(image).mask.shape
    (64, 64)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import disk

from seglab.config import InstanceConfig
from seglab.data.views import detect_modality, normalized_gray
from seglab.kinds import BINARY

if TYPE_CHECKING:
    # Imported for typing only: the predictor module imports torch, which a baseline never needs.
    from seglab.inference.base import Prediction
    from seglab.inference.sliding_window import StopCheck

# Stretching each image between its 1st and 99th percentiles makes dim acquisitions usable
# while a few saturated pixels cannot squash the rest of the range.
_PERCENTILES = (1.0, 99.0)
_INVERT_MODES = ("auto", "always", "never")


class OtsuBaseline:
    """Gaussian smoothing, an Otsu threshold per image, an opening, then instance labelling.

    Steps: grayscale (mean of the channels) -> percentile stretch to [0, 1] -> inversion of
    bright-field images (their nuclei are dark) -> Gaussian smoothing -> Otsu threshold ->
    binary opening -> `seglab.postprocess.instances_from_mask`.

    The prediction's ``probabilities`` are the smoothed, normalised (and possibly inverted)
    intensity: not probabilities, but monotonic in "looks like a nucleus", so threshold sweeps,
    curves and overlays still mean something. ``threshold`` (0.5) is there for the code that
    reads it; the mask comes from the per-image Otsu threshold unless `predict` is given one.

    Args:
        sigma: Standard deviation (pixels) of the Gaussian smoothing; 0 disables it. About 1
            removes pixel noise without merging nuclei.
        invert: "auto" inverts images `detect_modality` calls bright-field; "always" or
            "never" force it.
        opening_radius: Radius (pixels) of the disk of the binary opening that removes specks
            and thin bridges; 0 disables it.
        instances: How the mask becomes one label per nucleus; None means the defaults. A dict
            (as read back from ``seglab.json``) is accepted too.

    Raises:
        ValueError: An unknown ``invert`` mode or a negative ``sigma`` or ``opening_radius``.
    """

    def __init__(
        self,
        sigma: float = 1.0,
        invert: str = "auto",
        opening_radius: int = 1,
        instances: InstanceConfig | Mapping[str, Any] | None = None,
    ) -> None:
        if invert not in _INVERT_MODES:
            raise ValueError(f"unknown invert mode {invert!r}; valid: {', '.join(_INVERT_MODES)}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if opening_radius < 0:
            raise ValueError(f"opening_radius must be >= 0, got {opening_radius}")
        if instances is None:
            instances = InstanceConfig()
        elif not isinstance(instances, InstanceConfig):
            instances = InstanceConfig.model_validate(dict(instances))
        self.sigma = float(sigma)
        self.invert = invert
        self.opening_radius = int(opening_radius)
        self.instances = instances
        self.threshold = 0.5
        self.kind = BINARY
        self.metadata = self._describe()

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """The smoothed normalised intensity (H, W) float32 of an (H, W, C) or (H, W) image.

        Bright-field images are inverted first (per ``invert``), so nuclei are always bright.
        """
        gray = normalized_gray(image, _PERCENTILES)
        if self._should_invert(image):
            gray = 1.0 - gray
        if self.sigma > 0:
            gray = ndimage.gaussian_filter(gray, self.sigma, mode="reflect")
        return np.ascontiguousarray(gray, dtype=np.float32)

    def predict(
        self,
        image: np.ndarray,
        threshold: float | None = None,
        instances: bool = True,
        stop: StopCheck | None = None,
    ) -> Prediction:
        """Segment one image.

        Args:
            image: (H, W, C) or (H, W) uint8, uint16 or float image.
            threshold: Where to cut the smoothed intensity, in [0, 1]; None (the default):
                per image, by Otsu's method. The web page's threshold slider sets it.
            instances: Ignored: the baseline's mask is the union of its instances, so they are
                always computed.
            stop: Asked once, before anything is computed (the baseline is fast); a reason
                it gives raises `InferenceStoppedError`.

        Returns:
            A `Prediction` whose ``mask`` is the union of its ``instances`` (int32, 1..N).
        """
        from seglab.inference.base import Prediction
        from seglab.inference.sliding_window import raise_if_stopped
        from seglab.postprocess import instances_from_mask

        raise_if_stopped(stop)
        intensity = self.predict_proba(image)
        # Otsu needs two levels; a flat image (blank field, dead tile) holds no nucleus.
        if threshold is not None:
            mask = intensity >= np.float64(threshold)
        elif intensity.size and intensity.max() > intensity.min():
            mask = intensity > threshold_otsu(intensity)
        else:
            mask = np.zeros(intensity.shape, bool)
        if self.opening_radius > 0:
            mask = ndimage.binary_opening(mask, structure=disk(self.opening_radius))
        labels = np.asarray(instances_from_mask(mask, self.instances), dtype=np.int32)
        # The instances drop small objects: the mask follows them, so both always agree.
        return Prediction(intensity, labels > 0, labels)

    def _should_invert(self, image: np.ndarray) -> bool:
        if self.invert == "auto":
            return detect_modality(image) == "brightfield"
        return self.invert == "always"

    def _describe(self) -> dict[str, Any]:
        instances = self.instances.model_dump(mode="json")
        kwargs = {
            "sigma": self.sigma,
            "invert": self.invert,
            "opening_radius": self.opening_radius,
            "instances": instances,
        }
        # The layout of a trained model's seglab.json, minus the weights-related parts.
        return {
            "format": "seglab-bundle",
            "format_version": 1,
            "task": "binary",
            "model": {"name": "otsu", "kwargs": kwargs},
            "in_channels": None,  # any: channels are averaged
            "num_classes": 1,
            "class_names": ["background", "foreground"],
            "preprocessing": {
                "normalize": "percentile",
                "percentiles": list(_PERCENTILES),
                "input_size": None,
                "views": ["raw"],
            },
            "threshold": self.threshold,
            "instances": dict(instances),
            "metrics": {},
        }


BASELINES: dict[str, type[OtsuBaseline]] = {"otsu": OtsuBaseline}


def create_baseline(name: str, **kwargs: Any) -> OtsuBaseline:
    """Build the baseline called `name` (a key of `BASELINES`) with its constructor arguments.

    Raises:
        ValueError: Unknown name.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
    return BASELINES[name](**kwargs)
