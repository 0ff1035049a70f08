"""The bioimage.io model description (rdf.yaml) of a seglab bundle, built with `bioimageio.spec`.

The input is the raw image `(batch, channel, y, x)`; its pre-processing is written as the spec's
own steps, so that every bioimage.io consumer (Fiji, QuPath, deepImageJ, ilastik) applies what
`seglab.data.transforms.normalize_image` applies:

- "scale" (uint8 images divided by 255): `ensure_dtype` float32 then `scale_linear` by 1/255;
- "percentile": `scale_range` between the image's percentiles over channels, y and x jointly
  (seglab pools all channels too) then `clip` to [0, 1], as seglab's `stretch` clips.

The output is the probabilities `(batch, channel, y, x)` (sigmoid, or softmax for multi-class
models, inside the weights), of the input's size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seglab.errors import SeglabError

__all__ = ["CITATION_DOI", "PackageFiles", "model_description"]

CITATION_DOI = "10.1007/978-3-319-24574-4_28"
_CITATION = (
    "Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015."
)
# Tiles below this many divisor steps leave the deepest feature map too small to be useful.
_MIN_STEPS = 4


@dataclass(frozen=True)
class PackageFiles:
    """The files a package is built from (all in one temporary folder).

    Attributes:
        onnx: ONNX weights (`model.onnx`).
        torchscript: TorchScript weights.
        test_input: Raw test image `(1, C, H, W)` (.npy).
        test_output: The model's probabilities on it (.npy).
        cover: PNG of the test image beside its prediction.
        documentation: README.md.
        attachments: seglab's own bundle files (`seglab.json`, `weights.safetensors`).
        opset: The ONNX graph's opset.
    """

    onnx: Path
    torchscript: Path
    test_input: Path
    test_output: Path
    cover: Path
    documentation: Path
    attachments: tuple[Path, ...]
    opset: int


def model_description(metadata: dict[str, Any], divisor: int, files: PackageFiles) -> Any:
    """The `bioimageio.spec` ModelDescr (current format version) of a 2D segmentation bundle.

    Args:
        metadata: The bundle's `seglab.json`.
        divisor: The network's size divisor: input sides are `divisor * (_MIN_STEPS + n)`.
        files: The package's files.

    Returns:
        A validated `bioimageio.spec.model.v0_5.ModelDescr`.

    Raises:
        SeglabError: bioimageio.spec is not installed.
    """
    try:
        from bioimageio.spec.model import v0_5 as spec
    except ImportError as exc:
        raise SeglabError(
            "bioimage.io export needs bioimageio.spec: pip install 'bioimageio.spec>=0.5.12,<0.6' "
            "(or seglab's dev extra)"
        ) from exc

    name = str(metadata["model"]["name"])
    return spec.ModelDescr(
        name=f"seglab {name} {metadata['task']} segmentation",
        description=(
            f"A seglab {name} (U-Net family) that maps an image to per-pixel probabilities of "
            f"{', '.join(_output_names(metadata))}."
        ),
        authors=[spec.Author(name="seglab")],
        cite=[spec.CiteEntry(text=_CITATION, doi=spec.Doi(CITATION_DOI))],
        license=spec.LicenseId("MIT"),
        documentation=spec.FileDescr(source=files.documentation),
        covers=[spec.FileDescr(source=files.cover)],
        attachments=[spec.FileDescr(source=path) for path in files.attachments],
        tags=["segmentation", "unet", "seglab", "2d"],
        inputs=[_input_tensor(metadata, divisor, files.test_input)],
        outputs=[_output_tensor(metadata, files.test_output)],
        weights=spec.WeightsDescr(
            # Both formats are converted from seglab's safetensors weights (attached), which the
            # spec cannot describe without seglab; TorchScript, a trace of the eager model,
            # stands for them as the parent.
            onnx=spec.OnnxWeightsDescr(
                source=files.onnx, opset_version=files.opset, parent="torchscript"
            ),
            torchscript=spec.TorchscriptWeightsDescr(
                source=files.torchscript,
                pytorch_version=spec.Version(torch.__version__.split("+")[0]),
            ),
        ),
    )


def _input_tensor(metadata: dict[str, Any], divisor: int, test_input: Path) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    size = spec.ParameterizedSize(min=divisor * _MIN_STEPS, step=divisor)
    channels = int(metadata["in_channels"])
    return spec.InputTensorDescr(
        id=spec.TensorId("image"),
        description="raw image: 0-255 values, or any range for percentile normalisation",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(channel_names=[spec.Identifier(f"c{i}") for i in range(channels)]),
            spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
            spec.SpaceInputAxis(id=spec.AxisId("x"), size=size),
        ],
        test_tensor=spec.FileDescr(source=test_input),
        # The type after pre-processing (the spec ends it with this dtype): what the weights take.
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=_preprocessing(metadata["preprocessing"]),
    )


def _preprocessing(preprocessing: dict[str, Any]) -> list[Any]:
    from bioimageio.spec.model import v0_5 as spec

    to_float = spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))
    if preprocessing.get("normalize", "scale") == "scale":
        gain = spec.ScaleLinearKwargs(gain=1 / 255)
        return [to_float, spec.ScaleLinearDescr(kwargs=gain)]
    low, high = (float(p) for p in preprocessing["percentiles"])
    axes = [spec.AxisId("channel"), spec.AxisId("y"), spec.AxisId("x")]
    stretch = spec.ScaleRangeKwargs(axes=axes, min_percentile=low, max_percentile=high)
    return [
        to_float,
        spec.ScaleRangeDescr(kwargs=stretch),
        spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0)),
    ]


def _output_tensor(metadata: dict[str, Any], test_output: Path) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    image = spec.TensorId("image")
    return spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description="per-pixel probabilities, one channel per output",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(
                channel_names=[spec.Identifier(name) for name in _output_names(metadata)]
            ),
            spec.SpaceOutputAxis(
                id=spec.AxisId("y"), size=spec.SizeReference(tensor_id=image, axis_id="y")
            ),
            spec.SpaceOutputAxis(
                id=spec.AxisId("x"), size=spec.SizeReference(tensor_id=image, axis_id="x")
            ),
        ],
        test_tensor=spec.FileDescr(source=test_output),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )


def _output_names(metadata: dict[str, Any]) -> list[str]:
    """The output channels (identifiers): the classes of a multi-class model, else its sigmoid
    outputs."""
    if metadata.get("task") == "multiclass":
        names = metadata["class_names"]
    else:
        names = metadata.get("outputs") or ["foreground"]
    return [_identifier(str(name), index) for index, name in enumerate(names)]


def _identifier(name: str, index: int) -> str:
    """`name` with every character that cannot be in a Python identifier replaced by "_"."""
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned.isidentifier() else f"c{index}_{cleaned}"
