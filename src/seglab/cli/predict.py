"""`seglab predict`: masks, instances, class labels and submissions for images of any size and
for volumes (see `seglab.cli.main`, which registers this command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from seglab.cli.options import (
    OverlapOption,
    PrecisionOption,
    Progress,
    ThresholdOption,
    TileOption,
    TtaOption,
    apply_inference_settings,
    console,
    examples,
)

ProbabilitiesOption = Annotated[
    bool, typer.Option("--probabilities", help="Also write probability maps.")
]
InstancesOption = Annotated[
    bool, typer.Option("--instances", help="Also write 16-bit label PNGs and outlines.")
]
RleOption = Annotated[
    Path | None, typer.Option(help="Write a Kaggle DSB2018 submission CSV (run-length).")
]
BackendOption = Annotated[
    str,
    typer.Option(
        help="auto (onnx when the bundle has model.onnx, torch on CPUs with native bf16), "
        "torch or onnx."
    ),
]
WorkersOption = Annotated[
    int, typer.Option(help="Processes sharing the images (each loads the model once).", min=1)
]
LazyAboveOption = Annotated[
    float,
    typer.Option(
        help="TIFFs above this many megapixels (and zarr folders) are predicted tile by "
        "tile with bounded memory into STEM_mask.tif.",
        min=0,
    ),
]
LargeFormatOption = Annotated[
    str, typer.Option(help="Format of lazily predicted masks: tif (tiled BigTIFF) or zarr.")
]


@examples(
    "seglab predict --model runs/nuclei/model 'data/new/*.png' --out predictions/",
    "seglab predict --model runs/nuclei/model stage1_test/ --out pred/ --instances --rle sub.csv",
    "seglab predict --model runs/nuclei/model big_folder/ --out pred/ --workers 2",
    "seglab predict --model runs/nuclei/model slide.ome.tif --out pred/ --lazy-above 16",
    "seglab predict --model runs/nuclei/model plate.ome.zarr --out pred/ --large-format zarr",
)
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    model: Annotated[Path, typer.Option(help="Model bundle folder or seglab's bioimage.io zip.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    probabilities: ProbabilitiesOption = False,
    overlays: Annotated[bool, typer.Option("--overlays", help="Also write overlays.")] = False,
    threshold: ThresholdOption = None,
    instances: InstancesOption = False,
    rle: RleOption = None,
    backend: BackendOption = "auto",
    tile: TileOption = None,
    overlap: OverlapOption = 0.5,
    tta: TtaOption = False,
    precision: PrecisionOption = "auto",
    workers: WorkersOption = 1,
    lazy_above: LazyAboveOption = 64.0,
    large_format: LargeFormatOption = "tif",
    progress: Progress = True,
) -> None:
    """Predict masks (and instances) for images of any size.

    `--model` is a bundle folder, a bioimage.io package (.zip) exported by seglab or a
    baseline name (`otsu`, no training). TIFFs above
    `--lazy-above` megapixels and `.zarr` / `.ome.zarr` folders are read, predicted and
    written band by band, so images larger than memory work.
    """
    from seglab.inference.predict_paths import PredictOptions, predict_paths

    predictor = _load(model, backend, precision, tile, overlap, tta, threshold)
    options = PredictOptions(
        probabilities,
        overlays,
        instances,
        rle,
        progress,
        workers,
        model,
        backend,
        precision,
        lazy_above=lazy_above,
        large_format=large_format,
    )
    console.print(predict_paths(predictor, list(inputs), out, options))


def _load(
    model: Path,
    backend: str,
    precision: str,
    tile: int | None,
    overlap: float,
    tta: bool,
    threshold: float | None,
) -> Any:
    """The predictor with the command's sliding-window, TTA and threshold settings."""
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(model, backend=backend, precision=precision)
    apply_inference_settings(predictor, tile, overlap, tta)
    if threshold is not None and not predictor.kind.classification:
        predictor.threshold = threshold
    return predictor


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(predict)
