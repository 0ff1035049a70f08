"""Prediction over files, folders and globs: masks, probability maps and overlays as PNG;
images larger than `lazy_above` megapixels and zarr folders tile by tile, as TIFF or zarr."""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.io import IMAGE_SUFFIXES, read_image, write_label_png, write_png
from seglab.data.layouts import find_samples
from seglab.data.lazy_io import is_zarr
from seglab.errors import ConfigError, DataError, SeglabError

logger = logging.getLogger(__name__)

# Images above this many megapixels are predicted lazily (`predict_large`): 64 MP is 64 MB as
# 8-bit gray, and the in-memory path holds about 20 bytes per pixel (float32 input, blended
# probabilities and weights, the mask), so ~1.3 GB, where the lazy path needs a few bands.
LAZY_ABOVE_MEGAPIXELS = 64.0
LARGE_FORMATS = ("tif", "zarr")


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Expand files, folders (their images, recursively) and glob patterns, in order, once each.

    A zarr folder (`.zarr`, `.ome.zarr`) is one image, not a folder of images.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if is_zarr(path) or path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = _folder_images(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            matches = [p for p in matches if p.is_file() or is_zarr(p)]
        if not matches:
            raise DataError(path, "no such file, or no image matches", "check the path or pattern")
        found.extend(matches)
    return list(dict.fromkeys(found))


def _folder_images(folder: Path) -> list[Path]:
    """The images of a dataset folder (not its masks), or every image below a plain folder."""
    try:
        found = find_samples(folder, "auto", skip_bad=True, require_masks=False)
        return [s.image for split in found.splits.values() for s in split]
    except DataError:
        # Everything inside a zarr folder is its chunks: skip it (string checks only).
        below = [p for p in folder.rglob("*") if not _in_zarr(p.relative_to(folder))]
        return sorted(
            p for p in below if (p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) or is_zarr(p)
        )


def _in_zarr(relative: Path) -> bool:
    return any(part.lower().endswith(".zarr") for part in relative.parts[:-1])


@dataclass
class PredictedFile:
    """The outputs written for one input image."""

    source: Path
    mask: Path
    foreground_fraction: float


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per input, never two alike: the stem, then for stems that collide the
    parent folder's name before it, then the file's suffix after it (`b.png` and `b.tif` in
    folder `s` give `s_b_png` and `s_b_tif`), then a number.

    Example:
        >>> output_stems([Path("a/x.png"), Path("b/x.png"), Path("b/y.png"), Path("b/y.tif")])
        ['a_x', 'b_x', 'b_y_png', 'b_y_tif']
    """
    names = [p.stem.removesuffix(".ome") for p in paths]
    for widen in (
        lambda path, name: f"{path.parent.name}_{name}",
        lambda path, name: f"{name}_{path.suffix.lstrip('.')}",
    ):
        if len(set(names)) == len(names):
            return names
        names = [
            widen(path, name) if names.count(name) > 1 else name
            for path, name in zip(paths, names, strict=True)
        ]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}_{seen[name]}")
    return unique


def check_submission_ids(paths: list[Path]) -> None:
    """Refuse inputs whose stems, a submission's ImageIds, are not unique.

    Raises:
        DataError: Naming the first id two files share and the files.
    """
    by_id: dict[str, list[Path]] = {}
    for path in paths:
        by_id.setdefault(path.stem, []).append(path)
    for image_id, files in by_id.items():
        if len(files) > 1:
            raise DataError(
                files[0],
                f"--rle: {len(files)} inputs share the ImageId '{image_id}' "
                f"({', '.join(str(f) for f in files)}); a submission needs one id per image",
                "predict the folders into separate submissions, or rename the files",
            )


@dataclass(frozen=True)
class OutputOptions:
    """What `predict_files` writes beside each mask."""

    probabilities: bool = False
    overlays: bool = False
    instances: bool = False
    rle: bool = False


def predict_files(
    predictor: Any,
    inputs: list[str | Path],
    out: str | Path,
    probabilities: bool = False,
    overlays: bool = False,
    instances: bool = False,
    rle: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    load: Callable[[], Any] | None = None,
    lazy_above: float | None = LAZY_ABOVE_MEGAPIXELS,
    large_format: str = "tif",
) -> list[PredictedFile]:
    """Predict every input image and write `<stem>_mask.png` (0/255) into `out`.

    Multi-class models write class indices into `<stem>_mask.png` and the classes in their
    palette into `<stem>_color.png`. Zarr folders and TIFFs of more than `lazy_above`
    megapixels are predicted tile by tile with bounded memory (`predict_large`) into
    `<stem>_mask.tif` (a tiled BigTIFF) or `<stem>_mask.zarr`, and `<stem>_prob.tif|zarr`;
    overlays, instances and RLE rows are not made for them.

    Args:
        predictor: The model to apply (see `load_predictor`).
        inputs: Files, folders or glob patterns.
        out: Output folder (created).
        probabilities: Also write `<stem>_prob.png` (probability × 255, 8-bit).
        overlays: Also write `<stem>_overlay.png` (the mask outlined over the image).
        instances: Also write `<stem>_labels.png` (16-bit, one label per object) and
            `<stem>_outlines.png` (each object outlined in its own colour).
        rle: Write a Kaggle DSB2018 submission CSV here (one row per object; implies instances).
        progress: Show a progress bar.
        workers: Spread the images over this many processes, each loading the model once with
            `load` and using its share of the cores; memory per worker stays constant.
        load: Builds the predictor in a worker (picklable, e.g. a `functools.partial` of
            `load_predictor`); needed when `workers > 1`.
        lazy_above: Megapixels above which a TIFF is predicted lazily; None: zarr only.
        large_format: "tif" or "zarr", the format of lazily predicted masks.

    Raises:
        ConfigError: An unknown `large_format`.
    """
    from seglab.rle import write_submission

    if large_format not in LARGE_FORMATS:
        raise ConfigError(f"--large-format: unknown '{large_format}'; valid: tif, zarr")
    paths = collect_inputs(inputs)
    if rle is not None:
        check_submission_ids(paths)
    options = OutputOptions(probabilities, overlays, instances, rle is not None)
    items, lazy = _split_by_size(list(zip(paths, output_stems(paths))), lazy_above)
    done = _predict_in_memory(predictor, items, Path(out), options, workers, load, progress)
    if rle is not None:
        write_submission(Path(rle), [row for _, rows in done for row in rows])
    results = {result.source: result for result, _ in done}
    results |= _predict_large_files(
        predictor, load, lazy, Path(out), options, large_format, progress
    )
    return [results[path] for path in paths]


def _split_by_size(
    named: list[tuple[Path, str]], lazy_above: float | None
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """The `(path, name)` items predicted in memory, and those predicted lazily (`needs_lazy`)."""
    from seglab.inference.large_images import needs_lazy

    large = [needs_lazy(path, lazy_above) for path, _ in named]
    in_memory = [item for item, lazy in zip(named, large) if not lazy]
    return in_memory, [item for item, lazy in zip(named, large) if lazy]


def _predict_large_files(
    predictor: Any,
    load: Callable[[], Any] | None,
    items: list[tuple[Path, str]],
    out: Path,
    options: OutputOptions,
    large_format: str,
    progress: bool,
) -> dict[Path, PredictedFile]:
    """`predict_large_file` for each `(path, name)`, in the main process."""
    results = {}
    for path, name in items:
        if predictor is None and load is not None:
            predictor = load()  # workers > 1 left the main process without a model
        results[path] = predict_large_file(
            predictor, path, name, out, options, large_format, progress
        )
    return results


def predict_large_file(
    predictor: Any,
    path: Path,
    name: str,
    out: Path,
    options: OutputOptions,
    large_format: str = "tif",
    progress: bool = True,
) -> PredictedFile:
    """Predict one large image tile by tile into `<name>_mask.<large_format>` (and
    `<name>_prob.<large_format>`), with a progress bar over its tiles."""
    from seglab.inference.large_images import predict_large, tile_progress

    if options.overlays or options.instances or options.rle:
        logger.warning("%s: large image: no overlay, instances or RLE rows are made", path)
    probabilities = out / f"{name}_prob.{large_format}" if options.probabilities else None
    bar = tile_progress(f"predicting {path.name}") if progress else nullcontext(None)
    with bar as update:
        done = predict_large(
            predictor, path, out / f"{name}_mask.{large_format}", probabilities, update
        )
    return PredictedFile(path, done.mask, done.foreground_fraction)


def _predict_in_memory(
    predictor: Any,
    items: list[tuple[Path, str]],
    out: Path,
    options: OutputOptions,
    workers: int,
    load: Callable[[], Any] | None,
    progress: bool,
) -> list[tuple[PredictedFile, list[tuple[str, np.ndarray]]]]:
    if workers > 1:
        if load is None:
            raise ValueError("workers > 1 needs `load`, to build the predictor in each worker")
        from seglab.inference.parallel import predict_in_processes

        return predict_in_processes(load, items, out, options, workers, progress)
    shown: Iterable[tuple[Path, str]] = items
    if progress:
        from rich.progress import track

        shown = track(items, description="predicting")
    from seglab.inference.overlapped import core_for_finishing, predict_overlapped

    heavy_finish = options.instances or options.rle
    with core_for_finishing() if heavy_finish else nullcontext():
        return predict_overlapped(
            shown,
            lambda path: forward_one(predictor, path),
            lambda path, name, image, prediction: finish_one(
                predictor, path, name, out, options, image, prediction
            ),
        )


def predict_one(
    predictor: Any, path: Path, name: str, out: Path, options: OutputOptions
) -> tuple[PredictedFile, list[tuple[str, np.ndarray]]]:
    """Predict one image file and write its outputs; returns the submission rows (Kaggle's
    ImageId, the image's stem, and its instance labels) when `options.rle`."""
    image, prediction = forward_one(predictor, path)
    return finish_one(predictor, path, name, out, options, image, prediction)


def forward_one(predictor: Any, path: Path) -> tuple[np.ndarray, Any]:
    """Read one image file and apply the model: the image and its prediction, instances not
    yet made (`finish_one` makes them)."""
    image = read_image(path)
    try:
        prediction = predictor.predict(image, instances=False)
    except SeglabError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, str(exc)) from None
    return image, prediction


def finish_one(
    predictor: Any,
    path: Path,
    name: str,
    out: Path,
    options: OutputOptions,
    image: np.ndarray,
    prediction: Any,
) -> tuple[PredictedFile, list[tuple[str, np.ndarray]]]:
    """What follows the network for one image (see `forward_one`): its instances when asked
    for, and every output file; returns what `predict_one` returns."""
    from seglab.viz import mask_overlay, save_png

    want_instances = options.instances or options.rle
    multiclass = predictor.kind.multiclass
    if want_instances and not multiclass and prediction.instances is None:
        prediction.instances = predictor.instances_from(prediction.mask, prediction.borders)
    mask_path = out / f"{name}_mask.png"
    if multiclass:
        write_png(mask_path, prediction.mask)
        coloured = predictor.colour(prediction.mask)
        save_png(out / f"{name}_color.png", coloured)
    else:
        write_png(mask_path, prediction.mask.astype(np.uint8) * 255)
    if options.probabilities:
        # Multi-class: the winning class's probability (the model's confidence).
        best = prediction.probabilities.max(0) if multiclass else prediction.probabilities
        write_png(out / f"{name}_prob.png", np.round(best * 255).astype(np.uint8))
    if options.overlays:
        overlay = (
            class_overlay(image, coloured) if multiclass else mask_overlay(image, prediction.mask)
        )
        save_png(out / f"{name}_overlay.png", overlay)
    rows = []
    if want_instances and prediction.instances is not None:
        if options.instances:
            write_label_png(out / f"{name}_labels.png", prediction.instances)
            save_png(out / f"{name}_outlines.png", outline_image(image, prediction.instances))
        if options.rle:
            rows.append((path.stem, prediction.instances))
    foreground = float((prediction.mask > 0).mean())
    return PredictedFile(path, mask_path, foreground), rows


def class_overlay(image: np.ndarray, coloured: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The palette-coloured classes blended over the image (RGB uint8)."""
    from seglab.viz import to_display

    mixed = (1 - alpha) * to_display(image).astype(np.float32) + alpha * coloured
    return np.round(mixed).astype(np.uint8)


def outline_image(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each instance's outline in its own colour over the image (RGB uint8)."""
    from seglab.postprocess import outline
    from seglab.viz import to_display

    rgb = to_display(image).copy()
    edges = outline(labels)
    # A fixed palette by label, so the same label keeps its colour across images.
    palette = np.random.default_rng(0).integers(64, 256, (int(labels.max()) + 1, 3))
    rgb[edges] = palette[labels[edges]]
    return rgb
