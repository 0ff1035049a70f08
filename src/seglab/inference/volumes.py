"""Whole-volume prediction from a bundle: the 3D sliding window with Gaussian blending.

A volume bundle (written by `seglab.training.kinds.volumes`) says `"spatial_dims": 3` in
`seglab.json` and holds its training patch as the tile (`preprocessing.tile = [D, H, W]`). A
volume of any size is normalised as in training, cut into tiles of that size overlapping by half,
each tile predicted (optionally averaged over the 8 flips) and the tiles blended with Gaussian
weights (σ = tile / 8), so memory depends on the tile and the batch, not on the volume. Nothing
here imports torch at module level: the ONNX Runtime backend runs without it.

Example:
    >>> predictor = load_volume_predictor("runs/blobs/model")  # doctest: +SKIP
    >>> probabilities, mask = predict_volume(predictor, volume)  # doctest: +SKIP
    >>> mask.shape == volume.shape[:3]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.transforms import NormalizeMode, match_channels, normalize_image
from seglab.errors import BundleError, ConfigError, DataError
from seglab.inference.sliding_window import flip_tta, sliding_window_predict
from seglab.kinds import kind_of

__all__ = [
    "VolumePrediction",
    "VolumePredictor",
    "collect_volumes",
    "load_volume_predictor",
    "predict_volume",
    "predict_volume_files",
    "prepare_volume",
]

Forward = Callable[[np.ndarray], np.ndarray]


def prepare_volume(
    volume: np.ndarray,
    channels: int,
    normalize: NormalizeMode = "scale",
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Turn a volume into model input, exactly as training does.

    Channels are matched as for 2D images (gray repeated, RGB averaged), then the whole volume
    is normalised at once with `normalize_image` (its percentiles are the volume's, not a slice's).

    Args:
        volume: `(D, H, W)` or `(D, H, W, C)` array of any numeric dtype.
        channels: Input channels of the model.
        normalize: "scale" (divide by the dtype maximum) or "percentile".
        percentiles: The (low, high) percentiles of "percentile" mode.

    Returns:
        `(channels, D, H, W)` float32, C-contiguous.

    Raises:
        ValueError: The volume is not 3D or 4D, or its channels cannot become `channels`.
    """
    if volume.ndim == 3:
        volume = volume[..., None]
    if volume.ndim != 4:
        raise ValueError(f"expected a (D, H, W) or (D, H, W, C) volume, got shape {volume.shape}")
    depth, height, width, have = volume.shape
    # match_channels works on (H, W, C) images: the voxels are laid out as one long image row.
    flat = match_channels(volume.reshape(depth * height, width, have), channels)
    data = normalize_image(flat.reshape(depth, height, width, channels), normalize, percentiles)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0), dtype=np.float32)


@dataclass
class VolumePrediction:
    """Outputs for one volume.

    Attributes:
        probabilities: Binary models: foreground probabilities `(D, H, W)` float32. Multi-class
            models: class probabilities `(K, D, H, W)` float32.
        mask: Binary: `(D, H, W)` bool, probabilities at the threshold. Multi-class: `(D, H, W)`
            uint8 class indices (argmax; no threshold), as the 2D predictors give.
    """

    probabilities: np.ndarray
    mask: np.ndarray


class VolumePredictor:
    """Applies a volume model to volumes of any size by sliding window.

    Args:
        forward: Maps a batch `(B, C, *tile)` float32 to `(B, K, *tile)` probabilities (sigmoid
            or softmax applied).
        metadata: The bundle's `seglab.json` content.

    Attributes:
        overlap: Fraction of a tile shared with its neighbours (0.5, as nnU-Net).
        batch_size: Tiles per forward pass.
        tta: Average over the 8 flips of each tile.
        threshold: The tuned threshold of a binary model.

    Raises:
        BundleError: The metadata is not that of a volume model.
        ConfigError: Its tile is not 3 sides >= 1.
    """

    def __init__(self, forward: Forward, metadata: dict[str, Any]) -> None:
        self.kind = kind_of(metadata)
        if not self.kind.volumes:
            raise BundleError(
                f"model '{metadata['model']['name']}' is not a volume model (spatial_dims "
                f"{metadata.get('spatial_dims', 2)}); use seglab.inference.Predictor for images"
            )
        pre = metadata["preprocessing"]
        self.forward = forward
        self.metadata = metadata
        self.channels = int(pre.get("channels") or metadata["in_channels"])
        self.normalize: NormalizeMode = pre["normalize"]
        self.percentiles = (float(pre["percentiles"][0]), float(pre["percentiles"][1]))
        self.tile = pre["tile"]
        self.overlap = 0.5
        self.batch_size = 2
        self.tta = False
        self.threshold = float(metadata["threshold"])
        self.num_classes = int(metadata["num_classes"])

    @property
    def tile(self) -> tuple[int, int, int]:
        """Tile `(D, H, W)`; an int sets a cube (as `seglab predict --tile N` does)."""
        return self._tile

    @tile.setter
    def tile(self, value: int | Sequence[int]) -> None:
        sides = [int(value)] * 3 if isinstance(value, int) else [int(v) for v in value]
        if len(sides) != 3 or min(sides) < 1:
            raise ConfigError(f"tile: expected a side or 3 sides >= 1, got {value!r}")
        self._tile = (sides[0], sides[1], sides[2])

    @property
    def multiclass(self) -> bool:
        """Whether the model has one softmax channel per class (else one sigmoid channel)."""
        return self.num_classes > 1

    def predict_channels(self, volume: np.ndarray) -> np.ndarray:
        """Probabilities of every output channel, `(K, D, H, W)` float32."""
        data = prepare_volume(volume, self.channels, self.normalize, self.percentiles)
        forward = flip_tta(self.forward, 3) if self.tta else self.forward
        return sliding_window_predict(data, forward, self.tile, self.overlap, self.batch_size)

    def predict_proba(self, volume: np.ndarray) -> np.ndarray:
        """Foreground probabilities `(D, H, W)`: channel 0 of a binary model, and 1 - P(class 0)
        (any class but the background) of a multi-class one."""
        channels = self.predict_channels(volume)
        return channels[0] if not self.kind.multiclass else 1 - channels[0]

    def predict(self, volume: np.ndarray, threshold: float | None = None) -> VolumePrediction:
        """Probabilities and the mask: at the tuned threshold (or `threshold`) for a binary
        model, the argmax class for a multi-class one."""
        channels = self.predict_channels(volume)
        if self.kind.multiclass:
            return VolumePrediction(channels, channels.argmax(0).astype(np.uint8))
        cut = self.threshold if threshold is None else threshold
        # Compared in float64, as the threshold was tuned.
        return VolumePrediction(channels[0], channels[0] >= np.float64(cut))


def predict_volume(predictor: VolumePredictor, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predict a whole volume with the predictor's tile, overlap, batch and TTA settings.

    Args:
        predictor: From `load_volume_predictor` (or `VolumePredictor` around any forward).
        volume: `(D, H, W)` or `(D, H, W, C)` raw volume (normalised here, as in training).

    Returns:
        `(probabilities, mask)` as in `VolumePrediction`.
    """
    prediction = predictor.predict(volume)
    return prediction.probabilities, prediction.mask


def onnx_forward(path: Path, threads: int | None = None) -> Forward:
    """A forward that runs `model.onnx` (probabilities out) with ONNX Runtime, without torch.

    Raises:
        BundleError: ONNX Runtime cannot load the file.
    """
    import onnxruntime as ort

    from seglab.inference.onnx_backend import session_options

    try:
        session = ort.InferenceSession(
            str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime raises its own exception types per failure
        raise BundleError(f"{path}: ONNX Runtime cannot load it ({exc})") from None
    input_name = session.get_inputs()[0].name

    def forward(batch: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(batch, dtype=np.float32)
        (probabilities,) = session.run(None, {input_name: data})
        return np.asarray(probabilities, dtype=np.float32)

    return forward


def load_volume_predictor(
    path: str | Path, device: str = "auto", backend: str = "auto", precision: str = "auto"
) -> VolumePredictor:
    """A predictor for a volume bundle folder.

    Args:
        path: The bundle folder (a volume run's `model/`).
        device: For the torch backend: "auto", "cpu", "cuda", ...
        backend: "torch", "onnx" (the bundle's `model.onnx`: `(N, C, D, H, W)` in, probabilities
            out; torch is never imported) or "auto" (as `seglab.load_predictor` chooses).
        precision: For the torch backend: "auto" (bf16 where native), "32" or "bf16".

    Raises:
        BundleError: The folder is not a volume bundle, or its files cannot be loaded.
        ConfigError: Unknown backend.
    """
    from seglab.bundle import read_metadata
    from seglab.inference.loading import onnx_preferred

    path = Path(path)
    metadata = read_metadata(path)
    if not kind_of(metadata).volumes:
        raise BundleError(f"{path}: not a volume bundle; load it with seglab.load_predictor")
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"--backend: unknown '{backend}'; valid: auto, torch, onnx")
    onnx_file = path / "model.onnx"
    if backend == "onnx" or (backend == "auto" and onnx_preferred(path, precision, device)):
        if not onnx_file.is_file():
            raise BundleError(f"{onnx_file}: missing; export the bundle or use --backend torch")
        return VolumePredictor(onnx_forward(onnx_file), metadata)
    from seglab.bundle import load_bundle
    from seglab.inference.predictor import torch_forward

    model, metadata = load_bundle(path)
    multiclass = kind_of(metadata).multiclass
    return VolumePredictor(torch_forward(model, device, multiclass, precision), metadata)


def collect_volumes(inputs: list[str | Path]) -> list[Path]:
    """Volume files among `inputs`: files as given; for a folder, the images of a `volumes`
    layout (every split), else every volume file directly in it.

    Raises:
        DataError: An input does not exist or a folder holds no volume.
    """
    from seglab.data.volumes import VOLUME_SUFFIXES, find_volumes

    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_file():
            found.append(item)
        elif item.is_dir():
            try:
                found += [image for split in find_volumes(item).values() for _, image, _ in split]
            except DataError:  # not a volumes layout: the volume files of the folder itself
                files = sorted(p for p in item.iterdir() if not p.name.startswith("."))
                found += [p for p in files if p.name.lower().endswith(VOLUME_SUFFIXES)]
        else:
            raise DataError(item, "no such file or folder", "check the path")
    if not found:
        raise DataError(Path(str(inputs[0])), "no volume files found", "use .tif, .npy or .nii.gz")
    return list(dict.fromkeys(found))


def predict_volume_files(
    predictor: VolumePredictor,
    inputs: list[str | Path],
    out: str | Path,
    probabilities: bool = False,
) -> list[Path]:
    """Predict every volume and write `<stem>_mask.tif` into `out` (created).

    Masks are uint8 stacks: 0/255 for a binary model, class indices (the argmax) for a
    multi-class one, with the input's voxel spacing. With `probabilities`, `<stem>_prob.tif`
    holds float32 probabilities too: of the foreground (binary), or of each voxel's predicted
    class (multi-class, as 2D `seglab predict` writes).

    Returns:
        The mask files written, in input order.

    Raises:
        DataError: An input is missing or unreadable.
    """
    from seglab.data.volumes import read_volume, volume_stem, write_volume

    out = Path(out)
    written = []
    for path in collect_volumes(inputs):
        volume = read_volume(path)
        prediction = predictor.predict(volume.data)
        mask = prediction.mask.astype(np.uint8) * (1 if predictor.kind.multiclass else 255)
        target = out / f"{volume_stem(path)}_mask.tif"
        write_volume(target, mask, volume.spacing)
        if probabilities:
            channels = prediction.probabilities
            shown = channels.max(0) if predictor.kind.multiclass else channels
            write_volume(out / f"{volume_stem(path)}_prob.tif", shown.astype(np.float32))
        written.append(target)
    return written
