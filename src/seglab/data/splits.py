"""From a data folder to decoded train / val / test samples, with the split written down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seglab.data.layouts import Sample, Skipped, find_samples, split_samples
from seglab.data.loading import load_samples
from seglab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from seglab.config import DataConfig
    from seglab.data.labels import LabelMapping


@dataclass
class SplitData:
    """Decoded samples per split, the layout found, and what was skipped as bad input."""

    layout: str
    # LoadedSample (decoded in memory) or CachedSample (memory-mapped) lists per split.
    samples: dict[str, list[Any]]
    files: dict[str, list[Sample]]
    skipped: list[Skipped] = field(default_factory=list)
    # The label mapping of multi-class masks; None for binary masks.
    mapping: LabelMapping | None = None

    def splits_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            **{name: [str(s.image) for s in samples] for name, samples in self.files.items()},
        }


def assign_splits(
    found: dict[str, list[Sample]], data: DataConfig, seed: int
) -> dict[str, list[Sample]]:
    """Use train/val/test folders when present; otherwise split at random, seeded."""
    if "all" in found:
        return split_samples(found["all"], data.val_fraction, data.test_fraction, seed)
    splits = dict(found)
    if "train" not in splits:
        raise ConfigError(f"the data has no train split (found: {', '.join(splits)})")
    if "val" not in splits:
        # Carve validation out of train; the test folder, if any, stays untouched.
        carved = split_samples(splits["train"], data.val_fraction or 0.15, 0.0, seed)
        splits["train"], splits["val"] = carved["train"], carved["val"]
    return splits


def label_mapping(data: DataConfig, layout: str) -> LabelMapping | None:
    """The label mapping of a multi-class dataset, or None when its masks are binary.

    Multi-class means the cityscapes layout, a `data.num_classes`, or a YAML `data.labels` file.
    """
    from seglab.data.labels import resolve_mapping

    custom = data.labels.endswith((".yaml", ".yml"))
    if layout != "cityscapes" and data.num_classes is None and not custom:
        return None
    mapping = resolve_mapping(data.labels, data.void, data.ignore_index, data.num_classes, layout)
    if data.num_classes is not None and data.num_classes != mapping.num_classes:
        raise ConfigError(
            f"'data.num_classes': {data.num_classes}, but data.labels={data.labels} with "
            f"data.void={data.void} gives {mapping.num_classes} classes; leave num_classes unset"
        )
    return mapping


def find_split_files(
    data: DataConfig, seed: int, assignment: dict[str, list[str]] | None = None
) -> SplitData:
    """Find and split the samples of `data.root`, decoding nothing (`samples` stays empty).

    `assignment` (split name -> sample ids) overrides the split, e.g. for cross-validation.
    """
    if data.root is None:
        raise ConfigError("'data.root' is not set; pass --data DIR or set data.root in the config")
    found = find_samples(Path(data.root), data.layout, skip_bad=data.skip_bad)
    if assignment is not None:
        by_id = {s.id: s for split in found.splits.values() for s in split}
        files = {name: [by_id[i] for i in ids] for name, ids in assignment.items()}
    else:
        files = assign_splits(found.splits, data, seed)
    mapping = label_mapping(data, found.layout)
    return SplitData(found.layout, {}, files, list(found.skipped), mapping)


def check_labelled(split: SplitData, root: Path) -> None:
    """Refuse a train or val split without a labelled sample."""
    for name in ("train", "val"):
        if not split.samples.get(name):
            raise DataError(
                root,
                f"the {name} split has no labelled sample",
                "add images with masks, or lower data.val_fraction / data.test_fraction",
            )


def load_split_data(
    data: DataConfig,
    seed: int,
    progress: bool = False,
    assignment: dict[str, list[str]] | None = None,
) -> SplitData:
    """Find, split and decode every sample of `data.root` into memory (small data sets and
    evaluation; training reads through `seglab.data.cache`)."""
    split = find_split_files(data, seed, assignment)
    for name, split_files in split.files.items():
        loaded, bad = load_samples(
            split_files, data.skip_bad, progress, f"decoding {name}", split.mapping
        )
        split.samples[name] = [s for s in loaded if s.mask is not None]
        split.skipped.extend(bad)
    check_labelled(split, Path(str(data.root)))
    return split


def cache_split_data(
    data: DataConfig,
    seed: int,
    cache: Path,
    borders: bool,
    progress: bool = False,
    assignment: dict[str, list[str]] | None = None,
) -> SplitData:
    """Find and split the samples of `data.root` and decode into `cache` those not yet there;
    `samples` holds memory-mapped `CachedSample`s."""
    from seglab.data.cache import Preparation, cache_samples

    split = find_split_files(data, seed, assignment)
    if borders and split.mapping is not None:
        raise ConfigError(
            "'data.target': boundary is for binary nucleus masks; multi-class data uses mask"
        )
    preparation = Preparation(data.size, borders, data.percentiles, split.mapping)
    for name, split_files in split.files.items():
        cached, bad = cache_samples(
            split_files, cache, preparation, data.skip_bad, progress, f"caching {name}"
        )
        split.samples[name] = cached
        split.skipped.extend(bad)
    check_labelled(split, Path(str(data.root)))
    return split
