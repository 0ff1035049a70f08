"""The files of a bioimage.io package besides its weights: test tensors, cover and README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from seglab.data.synthetic import make_nuclei
from seglab.data.transforms import match_channels, normalize_image, round_up

__all__ = ["TEST_SIDE", "test_image", "write_cover", "write_readme", "write_test_tensors"]

# The test image's side before rounding up to the divisor: big enough to hold several nuclei,
# small enough that bioimage.io's test run takes a moment.
TEST_SIDE = 128


def test_image(metadata: dict[str, Any], divisor: int) -> np.ndarray:
    """A synthetic nucleus image `(H, W, C)` uint8 with the bundle's channels and sides a
    multiple of `divisor`."""
    side = round_up(TEST_SIDE, divisor)
    image = make_nuclei(1, size=side, seed=0, variant="fluorescence")[0][0]
    return match_channels(image, int(metadata["in_channels"]))


def write_test_tensors(
    model: nn.Module, metadata: dict[str, Any], image: np.ndarray, folder: Path
) -> tuple[Path, Path]:
    """Save the raw test input `(1, C, H, W)` and the model's probabilities on it as .npy.

    The input is the raw image as float32 (the package's pre-processing scales it); the
    output is computed from seglab's own pre-processing, so bioimage.io's test run checks that
    the spec's steps reproduce it.

    Returns:
        The input and output files.
    """
    pre = metadata["preprocessing"]
    raw = image.transpose(2, 0, 1)[None].astype(np.float32)
    prepared = normalize_image(image, pre.get("normalize", "scale"), tuple(pre["percentiles"]))
    batch = torch.from_numpy(np.ascontiguousarray(prepared.transpose(2, 0, 1)[None]))
    with torch.inference_mode():
        output = model(batch).numpy().astype(np.float32)
    input_path, output_path = folder / "test_input.npy", folder / "test_output.npy"
    np.save(input_path, np.ascontiguousarray(raw))
    np.save(output_path, output)
    return input_path, output_path


def write_cover(image: np.ndarray, output: Path, path: Path) -> Path:
    """A PNG of the test image (left) beside its first output's probabilities (right, gray)."""
    probabilities = np.load(output)[0, 0]
    gray = np.round(probabilities * 255).astype(np.uint8)
    left = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
    cover = np.concatenate([left, np.repeat(gray[:, :, None], 3, axis=2)], axis=1)
    if not cv2.imwrite(str(path), cv2.cvtColor(cover, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write the cover image {path}")
    return path


def write_readme(metadata: dict[str, Any], path: Path) -> Path:
    """The package's documentation, from the bundle's metadata."""
    pre = metadata["preprocessing"]
    model = metadata["model"]
    if pre.get("normalize", "scale") == "scale":
        normalization = "uint8 values divided by 255"
    else:
        low, high = pre["percentiles"]
        normalization = f"stretched between the {low} and {high} percentiles, clipped to [0, 1]"
    metrics = metadata.get("metrics", {}).get("val") or {}
    scores = ", ".join(f"{key} {value:.3f}" for key, value in metrics.items() if "_" not in key)
    lines = [
        f"# seglab {model['name']} segmentation model",
        "",
        f"Exported from a seglab bundle ({metadata.get('task')} segmentation, "
        f"{metadata['in_channels']} input channels) by `seglab export --format bioimageio`.",
        "",
        "## Inputs and outputs",
        "",
        f"- Input `image` (batch, channel, y, x): {normalization}.",
        "- Output `probabilities` (batch, channel, y, x), one channel per output: "
        + ", ".join(str(name) for name in metadata.get("outputs") or ["foreground"])
        + f"; seglab thresholds the first at {metadata['threshold']}.",
        "",
        "## Validation",
        "",
        f"Validation scores recorded at training: {scores or 'none recorded'}.",
        "Run it on your own images with `seglab predict --model model.zip`.",
        "",
        "## Citation",
        "",
        "Ronneberger, Fischer, Brox (2015), U-Net, doi:10.1007/978-3-319-24574-4_28.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
