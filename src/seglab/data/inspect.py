"""Summarise a dataset folder before training: sizes, channels, bit depths, class balance."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seglab.atomic_files import atomic_write_bytes
from seglab.data.layouts import Skipped, find_samples
from seglab.data.loading import LoadedSample, iter_load, load_samples
from seglab.errors import DataError
from seglab.names import printable

if TYPE_CHECKING:
    from rich.table import Table

    from seglab.data.labels import LabelMapping


def _mapping(layout: str) -> LabelMapping | None:
    """The label mapping a multi-class layout is read with by default (Cityscapes categories,
    void ignored), or None for binary masks."""
    from seglab.config import DataConfig
    from seglab.data.splits import label_mapping

    return label_mapping(DataConfig(), layout)


def inspect_dataset(root: str | Path, layout: str = "auto") -> dict[str, Any]:
    """Decode every sample of a dataset folder once and summarise it.

    Unlabelled images are counted but left out of the mask statistics; bad samples are listed
    under ``skipped`` instead of stopping the inspection.

    Args:
        root: Dataset folder.
        layout: A layout name, or ``"auto"``.

    Returns:
        A JSON-friendly dict: ``layout``, ``splits`` (count per split), ``num_images``,
        ``num_labelled``, ``height`` and ``width`` (``{"min", "max"}``), ``distinct_sizes``,
        ``channels`` and ``bit_depths`` (image count per value), ``foreground_fraction_mean``
        (mean of per-image fractions), ``foreground_fraction_pixels`` (over all pixels),
        ``instances_per_image`` (dsb2018), ``class_weights`` (``{"background", "foreground"}``)
        and ``skipped``. Mask statistics are None without labelled images. Multi-class layouts
        (cityscapes, read with its default category mapping) report ``class_fractions`` (share
        of the scored pixels per class) instead of the foreground statistics.

    Raises:
        DataError: The folder is missing, empty or matches no layout.
    """
    found = find_samples(root, layout, skip_bad=True, require_masks=False)
    skipped = list(found.skipped)
    samples = [s for split in found.splits.values() for s in split]
    mapping = _mapping(found.layout)
    tally = _Tally(np.zeros(mapping.num_classes if mapping else 0, np.int64))
    for result in iter_load(samples, skip_bad=True, mapping=mapping):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            tally.add(result, multiclass=mapping is not None)
    return {
        "root": str(root),
        "layout": found.layout,
        "splits": {name: len(split) for name, split in found.splits.items()},
        **tally.summary(mapping),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped],
    }


@dataclass
class _Tally:
    """Counts over the decoded samples of a dataset, for `inspect_dataset`."""

    class_pixels: np.ndarray
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    channels: Counter[int] = field(default_factory=Counter)
    depths: Counter[int] = field(default_factory=Counter)
    fractions: list[float] = field(default_factory=list)
    instance_counts: list[int] = field(default_factory=list)
    foreground: int = 0
    total: int = 0

    def add(self, sample: LoadedSample, multiclass: bool) -> None:
        height, width, num_channels = sample.image.shape
        self.sizes[height, width] += 1
        self.channels[num_channels] += 1
        self.depths[8 * sample.image.itemsize] += 1
        if sample.mask is not None and multiclass:
            pixels = np.bincount(sample.mask.ravel(), minlength=256)[: len(self.class_pixels)]
            self.class_pixels += pixels
            self.fractions.append(0.0)  # counts the labelled image; no foreground in multi-class
        elif sample.mask is not None:
            count = int(sample.mask.sum())
            self.foreground += count
            self.total += sample.mask.size
            self.fractions.append(count / sample.mask.size)
        if sample.instances is not None:
            labels = np.bincount(sample.instances.ravel())[1:]
            self.instance_counts.append(int(np.count_nonzero(labels)))

    def summary(self, mapping: LabelMapping | None) -> dict[str, Any]:
        """The report's entries from ``num_images`` to ``class_fractions``."""
        heights = [h for h, _ in self.sizes]
        widths = [w for _, w in self.sizes]
        binary = mapping is None
        scored = max(int(self.class_pixels.sum()), 1)
        names = mapping.names if mapping is not None else ()
        fractions, foreground, total = self.fractions, self.foreground, self.total
        return {
            "num_images": sum(self.sizes.values()),
            "num_labelled": len(fractions),
            "height": {"min": min(heights), "max": max(heights)} if self.sizes else None,
            "width": {"min": min(widths), "max": max(widths)} if self.sizes else None,
            "distinct_sizes": len(self.sizes),
            "channels": dict(sorted(self.channels.items())),
            "bit_depths": dict(sorted(self.depths.items())),
            "foreground_fraction_mean": float(np.mean(fractions)) if fractions and binary else None,
            "foreground_fraction_pixels": foreground / total if total else None,
            "instances_per_image": float(np.mean(self.instance_counts))
            if self.instance_counts
            else None,
            "class_weights": class_weights(total - foreground, foreground) if binary else None,
            "class_fractions": None
            if binary
            else {name: float(c) / scored for name, c in zip(names, self.class_pixels)},
        }


def class_weights(background: int, foreground: int) -> dict[str, float] | None:
    """Inverse-frequency class weights, as seed 001 computes them, normalised to sum to 1.

    ``w_c = total / (K * count_c)`` with K = 2 classes, then divided by the sum of the weights.

    Returns:
        ``{"background": w_0, "foreground": w_1}``, or None when either class has no pixel.
    """
    counts = np.array([background, foreground], dtype=np.float64)
    if counts.min() <= 0:
        return None
    weights = counts.sum() / (len(counts) * counts)
    weights /= weights.sum()
    return {"background": float(weights[0]), "foreground": float(weights[1])}


def save_sample_grid(
    samples: list[LoadedSample],
    path: str | Path,
    n: int = 8,
    seed: int = 0,
    mapping: LabelMapping | None = None,
) -> None:
    """Save a PNG grid of up to ``n`` random samples: each image next to its mask overlay.

    Instances, when present, get one colour each; multi-class masks (with their `mapping`) the
    colours of its palette; otherwise the mask is drawn in red.

    Raises:
        ValueError: ``samples`` is empty.
    """
    if not samples:
        raise ValueError("save_sample_grid needs at least one sample")
    # Imported here: matplotlib is slow to import and only needed for this figure.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(samples), size=min(n, len(samples)), replace=False))
    pairs_per_row = min(4, len(chosen))
    rows = -(-len(chosen) // pairs_per_row)
    figure = Figure(figsize=(2 * 2.2 * pairs_per_row, 2.4 * rows))
    FigureCanvasAgg(figure)  # Agg regardless of the session's backend; no pyplot global state
    axes = figure.subplots(rows, 2 * pairs_per_row, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for slot, index in enumerate(chosen):
        sample = samples[index]
        image = _display(sample.image)
        axes[2 * slot].imshow(image)
        axes[2 * slot].set_title(printable(sample.id), fontsize=8)
        axes[2 * slot + 1].imshow(_overlay(image, sample, mapping))
        axes[2 * slot + 1].set_title("mask" if sample.mask is not None else "no mask", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(Path(path), buffer.getvalue())


def save_dataset_grid(
    root: str | Path, path: str | Path, layout: str = "auto", n: int = 8, seed: int = 0
) -> None:
    """Decode `n` random samples of a dataset folder and save them with `save_sample_grid`."""
    found = find_samples(Path(root), layout, skip_bad=True, require_masks=False)
    files = [s for split in found.splits.values() for s in split]
    rng = np.random.default_rng(seed)
    chosen = [files[i] for i in sorted(rng.choice(len(files), min(n, len(files)), replace=False))]
    mapping = _mapping(found.layout)
    loaded, skipped = load_samples(chosen, skip_bad=True, mapping=mapping)
    if not loaded:
        raise DataError(
            Path(root),
            f"no sample grid: none of the {len(chosen)} samples drawn could be read "
            f"({len(skipped)} skipped, e.g. {skipped[0].path}: {skipped[0].reason})"
            if skipped
            else "no sample grid: the folder holds no sample",
            "fix or remove the unreadable files (data inspect lists them)",
        )
    save_sample_grid(loaded, path, n=n, seed=seed, mapping=mapping)


def format_inspection(report: dict[str, Any]) -> Table:
    """Render an `inspect_dataset` report as a two-column rich table."""
    from rich.table import Table

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        if isinstance(value, dict):
            return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
        return str(value)

    table = Table(title=f"Dataset {report['root']}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    for key, value in report.items():
        if key == "skipped":
            table.add_row("skipped", str(len(value)))
            for item in value[:10]:
                table.add_row("", f"{item['path']}: {item['reason']}")
        elif key != "root":
            table.add_row(key.replace("_", " "), fmt(value))
    return table


def _display(image: np.ndarray) -> np.ndarray:
    from seglab.viz import to_display

    return to_display(image) / 255.0


def _overlay(
    image: np.ndarray, sample: LoadedSample, mapping: LabelMapping | None = None
) -> np.ndarray:
    if sample.mask is None:
        return image
    if mapping is not None:
        from seglab.data.labels import colorize

        scored = (sample.mask != mapping.ignore_index)[..., None]
        colours = colorize(sample.mask, mapping.palette, mapping.ignore_index) / 255.0
        return np.where(scored, 0.45 * image + 0.55 * colours, image)
    if sample.instances is not None:
        palette = np.random.default_rng(0).uniform(0.2, 1.0, (int(sample.instances.max()) + 1, 3))
        colours = palette[sample.instances]
    else:
        colours = np.broadcast_to(np.array([1.0, 0.1, 0.1]), image.shape)
    alpha = 0.45 * sample.mask[..., None]
    return (1 - alpha) * image + alpha * colours
