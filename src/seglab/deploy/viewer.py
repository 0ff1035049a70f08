"""napari integration: an image, its prediction and its ground truth as napari layers.

The layers' data are built by plain functions (`read_view_image`, `predict_view`,
`read_truth`, `build_layers`, `segment`) that need neither napari nor Qt, so they are tested
anywhere; the functions from `import_napari` on import napari when called. napari and a Qt
binding come with the optional extra: ``pip install 'seglab[viewer]'``.

Images are ``(H, W, C)`` arrays as `seglab.data.io.read_image` returns them; volumes are
``(D, H, W, C)`` stacks (a channel axis is always present, so the number of dimensions tells
them apart) and are predicted slice by slice with a 2D model.

Example:
    >>> viewer = open_viewer("cells.png", model="runs/nuclei/model")  # doctest: +SKIP
    >>> [layer.name for layer in viewer.layers]  # doctest: +SKIP
    ['cells', 'cells probabilities', 'cells mask', 'cells instances']
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seglab.data.io import read_image
from seglab.data.volumes import read_volume
from seglab.errors import ConfigError, DataError, SeglabError
from seglab.inference.base import Prediction

logger = logging.getLogger(__name__)

# Suffixes that can only hold volumes; a TIFF may hold either and is tried as an image first.
_VOLUME_ONLY = (".npy", ".nii", ".nii.gz")
_TIFF = (".tif", ".tiff")
# The probabilities are drawn over the image in a perceptually uniform map, added to it so
# both stay visible; 0..1 fixed, so the same colour means the same probability everywhere.
PROBABILITY_STYLE: dict[str, Any] = {
    "colormap": "magma",
    "contrast_limits": (0.0, 1.0),
    "blending": "additive",
    "opacity": 0.7,
}
LayerKind = Literal["image", "labels"]


@dataclass
class LayerData:
    """One napari layer to be added: `viewer.add_<kind>(data, name=name, **options)`.

    Attributes:
        name: The layer's name.
        kind: "image" or "labels".
        data: The array: float or integer image, integer labels.
        options: Keyword arguments of napari's `add_image` / `add_labels`.
        attributes: Layer attributes set once it exists (those the constructor does not take).
    """

    name: str
    kind: LayerKind
    data: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


def read_view_image(path: str | Path) -> np.ndarray:
    """Read a 2D image or a volume for viewing.

    Args:
        path: PNG, JPEG or TIFF image; multi-page TIFF, ``.npy`` or NIfTI volume.

    Returns:
        ``(H, W, C)`` for an image, ``(D, H, W, C)`` for a volume.

    Raises:
        DataError: The file is missing or cannot be read as either.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_VOLUME_ONLY):
        return _with_channel_axis(read_volume(path).data)
    try:
        return read_image(path)
    except DataError:
        if not name.endswith(_TIFF) or not path.is_file():
            raise
    # A TIFF that is not a 2D image: a stack is the other thing it can be.
    return _with_channel_axis(read_volume(path).data)


def _with_channel_axis(volume: np.ndarray) -> np.ndarray:
    return volume[..., None] if volume.ndim == 3 else volume


def wants_instances(predictor: Any) -> bool:
    """Whether a predictor's model separates objects (the same rule as `seglab serve`)."""
    from seglab.baseline import BASELINES

    metadata = predictor.metadata
    return metadata["model"]["name"] in BASELINES or bool(metadata.get("instances"))


def predict_view(predictor: Any, image: np.ndarray, instances: bool) -> Prediction:
    """Predict an image, or a volume slice by slice.

    Args:
        predictor: A segmentation predictor (see `seglab.inference.loading.load_predictor`).
        image: ``(H, W, C)`` image or ``(D, H, W, C)`` volume.
        instances: Also label the objects.

    Returns:
        The prediction; for a volume every array gains a leading D axis and the instance labels
        of slice k follow those of slice k - 1, so every label in the stack is unique.
    """
    if image.ndim == 3:
        return predictor.predict(image, instances=instances)
    slices = [predictor.predict(plane, instances=instances) for plane in image]
    probabilities = np.stack([s.probabilities for s in slices])
    mask = np.stack([s.mask for s in slices])
    if not instances:
        return Prediction(probabilities, mask)
    stacked = []
    offset = 0
    for part in slices:
        labels = np.asarray(part.instances, dtype=np.int32)
        stacked.append(np.where(labels > 0, labels + offset, 0).astype(np.int32))
        offset += int(labels.max(initial=0))
    return Prediction(probabilities, mask, np.stack(stacked))


def read_truth(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read a ground-truth mask or label image (2D) or volume, for a labels layer.

    Values {0, m} (a binary mask in any bit depth) become 0/1; other values are kept as object
    labels (a 16-bit instance label image, say).

    Args:
        path: Mask image, or volume for a volume.
        shape: The image's spatial shape, ``(H, W)`` or ``(D, H, W)``, that the truth must match.

    Returns:
        uint8 mask (0/1) or int32 labels of `shape`.

    Raises:
        DataError: Unreadable, colour, or of another shape than the image.
    """
    path = Path(path)
    truth = read_view_image(path)
    planes = truth[..., 0]
    if truth.shape[-1] == 3 and not (
        np.array_equal(planes, truth[..., 1]) and np.array_equal(planes, truth[..., 2])
    ):
        raise DataError(
            path,
            "ground truth has differing colour channels; expected a single-channel mask or "
            "label image",
            "save the mask as grayscale PNG (0 background, 255 foreground) or 16-bit labels",
        )
    if planes.shape != tuple(shape):
        raise DataError(
            path,
            f"ground truth of shape {planes.shape}, but the image is {tuple(shape)}",
            "pass the mask that belongs to this image",
        )
    values = np.unique(planes)
    if values.size <= 2 and values[0] == 0:
        return (planes > 0).astype(np.uint8)
    return planes.astype(np.int32)


def image_layer(image: np.ndarray, name: str) -> LayerData:
    """The image itself: RGB shown as colour, a single channel as grayscale."""
    if image.shape[-1] == 3:
        return LayerData(name, "image", image, {"rgb": True})
    return LayerData(name, "image", image[..., 0], {"colormap": "gray"})


def build_layers(
    image: np.ndarray,
    name: str,
    prediction: Prediction | None = None,
    truth: np.ndarray | None = None,
) -> list[LayerData]:
    """Every layer of the view, bottom first: image, probabilities, mask, instances, truth.

    Args:
        image: ``(H, W, C)`` image or ``(D, H, W, C)`` volume.
        name: The image layer's name; the others are named after it ("<name> mask", ...).
        prediction: The model's output for `image`, or None for the image alone.
        truth: Ground truth from `read_truth`, or None.

    Returns:
        The layers, to be passed to `add_layers`.
    """
    layers = [image_layer(image, name)]
    if prediction is not None:
        layers += prediction_layers(prediction, name)
    if truth is not None:
        layers.append(LayerData(f"{name} truth", "labels", truth, {"opacity": 0.5}))
    return layers


def prediction_layers(prediction: Prediction, name: str) -> list[LayerData]:
    """Probabilities (float32 image, 0..1), mask (uint8 labels 0/1) and, when present, the
    instances (int32 labels) of one prediction, named after the image layer `name`."""
    layers = [
        LayerData(
            f"{name} probabilities",
            "image",
            prediction.probabilities.astype(np.float32, copy=False),
            dict(PROBABILITY_STYLE),
        ),
        LayerData(f"{name} mask", "labels", prediction.mask.astype(np.uint8), {"opacity": 0.5}),
    ]
    if prediction.instances is not None:
        instances = prediction.instances.astype(np.int32, copy=False)
        # Outlines, so the filled mask below stays visible and touching objects stay apart.
        shown = LayerData(f"{name} instances", "labels", instances, {"opacity": 0.9})
        shown.attributes["contour"] = 2
        layers.append(shown)
    return layers


def layer_image(data: Any, rgb: bool) -> np.ndarray:
    """The array of a napari image layer in the convention of `read_view_image`.

    Args:
        data: The layer's data: ``(H, W)``, ``(D, H, W)``, or with a last RGB(A) axis.
        rgb: Whether the last axis holds colours (napari's `layer.rgb`).

    Returns:
        ``(H, W, C)`` image or ``(D, H, W, C)`` volume; an alpha channel is dropped.

    Raises:
        SeglabError: Not a 2D image or a 3D stack (a multiscale pyramid, a time series, ...).
    """
    if isinstance(data, list | tuple):
        raise SeglabError(
            "a multiscale (pyramid) layer; open its full-resolution level as its own layer"
        )
    array = np.asarray(data)
    array = array[..., :3] if rgb else array[..., None]
    if array.ndim not in (3, 4):
        raise SeglabError(
            f"layer of shape {np.shape(data)}: expected a 2D image or a 3D stack, with an "
            "optional RGB axis; split time series or channels into separate layers"
        )
    return array


@dataclass
class Segmentation:
    """A model's output for one image as layers, with the time the prediction took.

    Attributes:
        name: The image layer's name.
        layers: Probabilities, mask and (when the model separates objects) instances.
        seconds: Wall time of the prediction alone (not of loading the model).
        foreground: Fraction of pixels in the mask.
        objects: Number of instances, or None when the model does not separate them.
    """

    name: str
    layers: list[LayerData]
    seconds: float
    foreground: float
    objects: int | None

    def summary(self) -> str:
        """One line for a status bar, e.g. "cells: 52 ms, 12.5% foreground, 7 objects"."""
        text = f"{self.name}: {self.seconds * 1e3:.0f} ms, {self.foreground:.1%} foreground"
        return text if self.objects is None else f"{text}, {self.objects} objects"


def segment(predictor: Any, image: np.ndarray, name: str) -> Segmentation:
    """Predict an image or volume and turn the output into layers named after `name`."""
    start = time.perf_counter()
    prediction = predict_view(predictor, image, wants_instances(predictor))
    seconds = time.perf_counter() - start
    objects = None
    if prediction.instances is not None:
        objects = int(np.count_nonzero(np.unique(prediction.instances)))
    foreground = float(prediction.mask.mean())
    layers = prediction_layers(prediction, name)
    return Segmentation(name, layers, seconds, foreground, objects)


def load_segmenter(model: str | Path, device: str = "auto", backend: str = "auto") -> Any:
    """A segmentation predictor for a bundle folder or a baseline name.

    Raises:
        ConfigError: The bundle is a classification or a 3D model.
        SeglabError: The bundle cannot be loaded (see `load_predictor`).
    """
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(model, device=device, backend=backend)
    if predictor.kind.classification:
        raise ConfigError(f"{model}: a classification model; the viewer shows segmentation models")
    if predictor.kind.volumes:
        raise ConfigError(f"{model}: a 3D model; the viewer runs 2D models (slice by slice)")
    return predictor
