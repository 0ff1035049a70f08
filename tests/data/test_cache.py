"""The on-disk sample cache: built once, reused, invalidated by a changed file, a truncated
entry detected and rebuilt, never read half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.cache import (
    CachedSample,
    Preparation,
    cache_samples,
    clear_cache,
)
from seglab.data.layouts import Sample
from seglab.data.mapped_arrays import RecentMappings
from seglab.errors import DataError

PREPARATION = Preparation(size=None, borders=False, percentiles=(1.0, 99.0))


def write_pair(folder: Path, name: str, shape: tuple[int, int], value: int = 200) -> Sample:
    folder.mkdir(parents=True, exist_ok=True)
    image = np.full((*shape, 3), value, np.uint8)
    image[: shape[0] // 2] = 10
    mask = np.zeros(shape, np.uint8)
    mask[: shape[0] // 2, : shape[1] // 3] = 255
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_mask.png")
    return Sample(name, folder / f"{name}.png", (folder / f"{name}_mask.png",))


def entries(cache: Path) -> list[Path]:
    return sorted(p.parent for p in cache.glob("*/*/sample.json"))


def test_built_once_then_reused(tmp_path: Path) -> None:
    samples = [write_pair(tmp_path / "d", "a", (37, 51)), write_pair(tmp_path / "d", "b", (64, 20))]
    cache = tmp_path / "cache"
    first, skipped = cache_samples(samples, cache, PREPARATION)
    assert not skipped and [s.id for s in first] == ["a", "b"]
    assert first[0].shape == (37, 51) and first[0].channels == 3
    assert isinstance(first[0].image, np.memmap)  # read lazily, not held
    np.testing.assert_array_equal(first[0].image, np.asarray(Image.open(samples[0].image)))
    assert first[0].mask.dtype == bool and first[0].foreground == (18 * 17,)
    assert first[0].bounds == (10.0, 200.0)
    stamps = [(e / "image.npy").stat().st_mtime_ns for e in entries(cache)]
    again, _ = cache_samples(samples, cache, PREPARATION)
    assert again == first
    assert [(e / "image.npy").stat().st_mtime_ns for e in entries(cache)] == stamps


def test_a_changed_file_or_preparation_gets_a_new_entry(tmp_path: Path) -> None:
    sample = write_pair(tmp_path / "d", "a", (32, 32))
    cache = tmp_path / "cache"
    (before,), _ = cache_samples([sample], cache, PREPARATION)
    write_pair(tmp_path / "d", "a", (32, 32), value=90)
    os.utime(sample.image, ns=(1, 1))  # a different modification time, as an edit gives
    (after,), _ = cache_samples([sample], cache, PREPARATION)
    assert after.folder != before.folder and int(after.image[-1, -1, 0]) == 90
    resized = Preparation(size=(16, 8), borders=False, percentiles=(1.0, 99.0))
    (small,), _ = cache_samples([sample], cache, resized)
    assert small.shape == (16, 8) and small.folder not in (before.folder, after.folder)


def test_a_truncated_entry_is_rebuilt(tmp_path: Path) -> None:
    sample = write_pair(tmp_path / "d", "a", (40, 40))
    cache = tmp_path / "cache"
    (entry,), _ = cache_samples([sample], cache, PREPARATION)
    image_file = entry.folder / "image.npy"
    image_file.write_bytes(image_file.read_bytes()[:-100])
    (rebuilt,), _ = cache_samples([sample], cache, PREPARATION)
    assert rebuilt.folder == entry.folder
    np.testing.assert_array_equal(rebuilt.image, np.asarray(Image.open(sample.image)))


def test_half_written_entries_are_never_read(tmp_path: Path) -> None:
    sample = write_pair(tmp_path / "d", "a", (24, 24))
    cache = tmp_path / "cache"
    (entry,), _ = cache_samples([sample], cache, PREPARATION)
    # A build killed before its sample.json: the folder exists but is no entry.
    (entry.folder / "sample.json").unlink()
    (entry.folder / "mask.npy").unlink()
    (again,), _ = cache_samples([sample], cache, PREPARATION)
    assert isinstance(again, CachedSample) and again.mask.shape == (24, 24)
    assert not list(cache.glob("*/.*.tmp"))


def test_bad_files_are_named_or_skipped(tmp_path: Path) -> None:
    good = write_pair(tmp_path / "d", "a", (24, 24))
    bad = write_pair(tmp_path / "d", "b", (24, 24))
    bad.image.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"b\.png"):
        cache_samples([good, bad], tmp_path / "cache", PREPARATION)
    kept, skipped = cache_samples([good, bad], tmp_path / "cache", PREPARATION, skip_bad=True)
    assert [s.id for s in kept] == ["a"] and skipped[0].path == bad.image


def test_clear_removes_only_a_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache_samples([write_pair(tmp_path / "d", "a", (24, 24))], cache, PREPARATION)
    assert clear_cache(cache)[0] == 1 and not cache.exists()
    with pytest.raises(DataError, match="not a seglab cache"):
        clear_cache(tmp_path / "d")
    assert (tmp_path / "d" / "a.png").exists()


def test_recent_mappings_are_reused_renewed_and_bounded(tmp_path: Path) -> None:
    recent = RecentMappings(limit=16 * 2048)
    small = tmp_path / "small.npy"
    np.save(small, np.arange(10))
    first = recent.get(small)
    assert recent.get(small) is first  # kept
    np.save(small, np.arange(10) * 2)  # rewritten: a new file, mapped anew
    np.testing.assert_array_equal(recent.get(small), np.arange(10) * 2)
    large = tmp_path / "large.npy"
    np.save(large, np.zeros(4096, np.uint8))  # over a sixteenth of the limit: never kept
    assert recent.get(large) is not recent.get(large)
    for index in range(40):
        np.save(tmp_path / f"{index}.npy", np.zeros(1000, np.uint8))
        recent.get(tmp_path / f"{index}.npy")
    assert recent.total <= recent.limit
    assert len(recent.kept) < 41
