"""ONNX export of a segmentation bundle, checked against torch before the file is kept.

The exported graph maps an `(N, C, H, W)` float32 input named "image" (any batch, height and
width; `(N, C, D, H, W)` with any depth for 3D models) to `(N, K, ...)` probabilities named
"probabilities": the sigmoid (softmax for multi-class models) is inside the graph, so
`seglab.inference.onnx_backend` needs ONNX Runtime and NumPy only. Pre-processing stays in
`seglab.json`, which gains an "onnx" entry describing the file.

Example:
    >>> result = export_onnx("runs/nuclei/model")  # doctest: +SKIP
    >>> result.max_abs_diff < 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seglab.atomic_files import atomic_path, atomic_write_json
from seglab.bundle import METADATA, WEIGHTS, file_sha256, load_bundle, read_metadata
from seglab.errors import SeglabError
from seglab.kinds import kind_of
from seglab.models.padding import pad_end

__all__ = ["ONNX_FILE", "PARITY_TOLERANCE", "ExportResult", "export_onnx"]

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
# Float32 convolutions summed in a different order by oneDNN and ONNX Runtime differ by ~1e-7 on
# probabilities; 1e-4 still catches a wrong operator, a missed crop or a baked-in shape.
PARITY_TOLERANCE = 1e-4
# Two small sizes (odd batch and non-square, one not a multiple of the U-Net's divisor) and a
# real-sized tile; the last catches errors that only accumulate over large feature maps. Shapes
# are (batch, *spatial), for 2D and 3D models.
PARITY_SHAPES = {
    2: ((1, 64, 64), (2, 96, 80), (1, 256, 256)),
    3: ((1, 16, 16, 16), (2, 24, 20, 18), (1, 64, 64, 64)),
}
# The trace input: batch 2 and odd, unequal sides so that neither size 1 nor equal sides nor a
# multiple of the divisor can be specialised into the graph.
_EXAMPLE_SHAPE = {2: (2, 61, 45), 3: (2, 19, 23, 17)}
_AXES = {2: ["batch", "height", "width"], 3: ["batch", "depth", "height", "width"]}
MIN_OPSET = 18
EXPORTER = "torch.export (torch.onnx.export dynamo=True)"


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote.

    Attributes:
        path: The `model.onnx` file.
        max_abs_diff: Largest |torch - onnxruntime| over the parity inputs' probabilities, or None
            when the check was skipped.
        seconds: Wall time of export and check.
        opset: ONNX opset of the graph.
    """

    path: Path
    max_abs_diff: float | None
    seconds: float
    opset: int


class _Probabilities(nn.Module):
    """A U-Net that pads, applies the sigmoid (softmax for multi-class) and crops in the graph.

    The U-Net pads (by reflection, as here) only `if any(pads)`; an exporter traces that branch
    once for the example size and bakes it in, so a graph traced at 64×64 fails at 45×61.
    Padding here unconditionally (by 0 when the size is already a multiple) keeps one graph
    valid for every size, and the model's own check then always sees a multiple of its
    divisor. seglab's predictors pad before the graph, so there the padding is always 0.
    """

    def __init__(self, model: nn.Module, multiclass: bool = False) -> None:
        super().__init__()
        self.model = model
        self.multiclass = multiclass
        self.divisor = int(getattr(model, "divisor", 1))

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(1) if self.multiclass else torch.sigmoid(logits)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        sizes = image.shape[2:]
        pads = [(size + self.divisor - 1) // self.divisor * self.divisor - size for size in sizes]
        probabilities = self.activation(self.model(pad_end(image, pads)))
        for axis, size in enumerate(sizes, start=2):
            probabilities = probabilities.narrow(axis, 0, size)
        return probabilities


def export_onnx(bundle: str | Path, opset: int = 18, check: bool = True) -> ExportResult:
    """Write `<bundle>/model.onnx` (dynamic batch, height and width, and depth for 3D models) and
    record it in the bundle.

    The graph is written to a temporary file, checked, then renamed, so a failed export or check
    never leaves a `model.onnx` behind that `load_predictor` would pick up.

    Args:
        bundle: A segmentation bundle folder (`weights.safetensors` + `seglab.json`).
        opset: ONNX opset, at least `MIN_OPSET` (torch.export's exporter has no older one).
        check: Compare torch and ONNX Runtime probabilities on `PARITY_SHAPES` random inputs.

    Returns:
        The file written, the parity difference, the time taken and the opset.

    Raises:
        SeglabError: The opset is too old, the bundle is a classifier or a baseline, the
            exporter failed, or the probabilities differ by more than `PARITY_TOLERANCE`.
        BundleError: The bundle folder is missing or incomplete.
    """
    start = time.perf_counter()
    bundle = Path(bundle)
    if opset < MIN_OPSET:
        # Below 18 the exporter falls back to a version converter that cannot convert Pad, and
        # keeps opset 18 with only a warning; refusing is clearer than a file of another opset.
        raise SeglabError(f"--opset {opset}: the torch.export exporter needs opset >= {MIN_OPSET}")
    metadata = read_metadata(bundle)
    name = str(metadata["model"]["name"])
    check_exportable(bundle, metadata)
    model, _ = load_bundle(bundle)
    kind = kind_of(metadata)
    wrapper = _Probabilities(model, kind.multiclass).eval()
    in_channels = int(metadata["in_channels"])
    spatial_dims = kind.spatial_dims

    target = bundle / ONNX_FILE
    max_abs_diff = None
    with atomic_path(target) as temporary:
        _export(wrapper, in_channels, spatial_dims, opset, temporary, name)
        if check:
            max_abs_diff = _parity(wrapper, temporary, in_channels, spatial_dims, name)
            if max_abs_diff > PARITY_TOLERANCE:
                raise SeglabError(
                    f"{bundle}: ONNX export of model '{name}' does not match torch: max abs "
                    f"difference of probabilities {max_abs_diff:.3g} > {PARITY_TOLERANCE:g}; "
                    f"model.onnx was not written (try another --opset)"
                )
    metadata["onnx"] = _onnx_entry(opset, max_abs_diff, spatial_dims)
    digests = {"sha256": file_sha256(target), "weights_sha256": file_sha256(bundle / WEIGHTS)}
    metadata["onnx"] |= digests
    atomic_write_json(bundle / METADATA, metadata)
    seconds = time.perf_counter() - start
    logger.info("exported %s (max abs diff %s) in %.1f s", target, max_abs_diff, seconds)
    return ExportResult(target, max_abs_diff, seconds, opset)


def _onnx_entry(opset: int, max_abs_diff: float | None, spatial_dims: int) -> dict[str, Any]:
    """The bundle metadata's "onnx" entry: the file, how it was made and its inputs and outputs."""
    return {
        "file": ONNX_FILE,
        "opset": opset,
        "max_abs_diff": max_abs_diff,
        "exporter": EXPORTER,
        "torch_version": torch.__version__,
        "input": "image",
        "output": "probabilities",
        "dynamic_axes": _AXES[spatial_dims],
    }


def check_exportable(bundle: Path, metadata: dict[str, Any]) -> None:
    """Raise `SeglabError` unless the bundle holds a known segmentation network (not a
    baseline, not a classifier)."""
    from seglab.baseline import BASELINES
    from seglab.models import MODELS, model_task

    name = str(metadata["model"]["name"])
    if name in BASELINES:
        raise SeglabError(
            f"{bundle}: '{name}' is a baseline (image processing, no network); there is nothing "
            f"to export, predict with it directly"
        )
    if name not in MODELS:
        raise SeglabError(f"{bundle}: unknown model '{name}'; valid: {', '.join(sorted(MODELS))}")
    if kind_of(metadata).classification or model_task(name) == "classification":
        raise SeglabError(
            f"{bundle}: '{name}' is a classification model; ONNX export supports segmentation "
            f"bundles only (classification export is not supported yet)"
        )


def _export(
    wrapper: nn.Module, in_channels: int, spatial_dims: int, opset: int, path: Path, name: str
) -> None:
    from torch.export import Dim

    batch, *sizes = _EXAMPLE_SHAPE[spatial_dims]
    example = torch.rand(batch, in_channels, *sizes)
    # Named dims make torch.export fail loudly if the model specialises a size, where the
    # TorchScript exporter (dynamo=False) silently bakes the traced size's branches in.
    axes = _AXES[spatial_dims]
    dims = {0: Dim(axes[0]), **{i + 2: Dim(axis) for i, axis in enumerate(axes[1:])}}
    # The exporter warns about torchvision ops and deprecated pytree classes: noise for U-Nets.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_shapes={"image": dims},
                external_data=False,
                verbose=False,
            )
        if program is None:  # only None when given a file name, which is not done here
            raise RuntimeError("torch.onnx.export returned no program")
        # One self-contained file: U-Nets are far below protobuf's 2 GB limit.
        program.save(str(path), external_data=False)
    except Exception as exc:
        raise SeglabError(f"cannot export model '{name}' to ONNX: {_cause(exc)}") from exc


def _cause(exc: Exception) -> str:
    """The useful line of an exporter error (torch's messages open with generic advice)."""
    text = str(exc)
    marker = "## Exception summary"
    if marker in text:
        lines = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if lines:
            return lines[0]
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _parity(
    wrapper: _Probabilities, path: Path, in_channels: int, spatial_dims: int, name: str
) -> float:
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch, *sizes in PARITY_SHAPES[spatial_dims]:
            # Uniform [0, 1] is the range the "scale" and "percentile" pre-processing produce.
            image = torch.rand(batch, in_channels, *sizes, generator=generator)
            with torch.inference_mode():
                # The plain model, not the wrapper: the wrapper's padding is part of the check.
                expected = wrapper.activation(wrapper.model(image)).numpy()
            (actual,) = session.run(["probabilities"], {"image": image.numpy()})
            if actual.shape != expected.shape:
                raise ValueError(
                    f"output shape {actual.shape} != torch's {expected.shape} for an input of "
                    f"shape {tuple(image.shape)}"
                )
            worst = max(worst, float(np.max(np.abs(actual - expected))))
    except Exception as exc:  # an exported graph ONNX Runtime cannot load or run is a failed export
        raise SeglabError(f"ONNX export of model '{name}' does not run: {_cause(exc)}") from exc
    return worst
