"""Finding samples in each layout, bad datasets, decoding samples once, and splitting."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.data.io import write_png
from seglab.data.layouts import (
    LAYOUTS,
    Sample,
    detect_layout,
    find_samples,
    split_samples,
)
from seglab.data.loading import load_sample, load_samples
from seglab.errors import DataError

IMAGE = np.arange(12, dtype=np.uint8).reshape(3, 4)
MASK = np.array([[0, 255, 255, 0], [0, 255, 0, 0], [0, 0, 0, 0]], np.uint8)


def make_folders(root: Path, stems: list[str], masks: list[str] | None = None) -> Path:
    """A folders-layout dataset; ``masks`` lists mask file names (default: one PNG per image)."""
    for stem in stems:
        write_png(root / "images" / f"{stem}.png", IMAGE)
    for name in [f"{s}.png" for s in stems] if masks is None else masks:
        write_png(root / "masks" / name, MASK)
    return root


def make_dsb(root: Path, masks: dict[str, list[np.ndarray] | None]) -> Path:
    """A dsb2018-layout dataset: id -> nucleus masks (None: no masks/ folder)."""
    for sample_id, nuclei in masks.items():
        write_png(root / sample_id / "images" / f"{sample_id}.png", IMAGE)
        for k, nucleus in enumerate(nuclei or [], start=1):
            write_png(root / sample_id / "masks" / f"{sample_id}_{k}.png", nucleus)
    return root


def raises_naming(name: str):
    return pytest.raises(DataError, match=name.replace(".", r"\."))


def test_folders_layout(tmp_path: Path) -> None:
    root = make_folders(tmp_path, ["b", "a", "c"], masks=["b.png", "a_mask.png", "c.tif"])
    (root / "images" / "notes.txt").write_text("ignored")
    (root / "images" / ".DS_Store").write_bytes(b"\0")
    found = find_samples(root)
    assert found.layout == "folders" and found.skipped == []
    assert list(found.splits) == ["all"]
    assert [s.id for s in found.splits["all"]] == ["a", "b", "c"]
    assert found.splits["all"][0] == Sample(
        "a", root / "images/a.png", (root / "masks/a_mask.png",)
    )
    assert found.splits["all"][2].masks == (root / "masks" / "c.tif",)


def test_split_folders_become_splits(tmp_path: Path) -> None:
    make_folders(tmp_path / "train", ["a", "b"])
    make_folders(tmp_path / "val", ["c"])
    make_folders(tmp_path / "test", ["d"])
    found = find_samples(tmp_path)
    assert detect_layout(tmp_path) == "folders"
    assert {k: [s.id for s in v] for k, v in found.splits.items()} == {
        "train": ["a", "b"],
        "val": ["c"],
        "test": ["d"],
    }


def test_dsb2018_layout_with_unlabelled_samples(tmp_path: Path) -> None:
    nuclei = [MASK] * 11
    root = make_dsb(tmp_path, {"s2": nuclei, "s1": [MASK], "u": None})
    assert detect_layout(root) == "dsb2018"
    with raises_naming("u.png"):
        find_samples(root)
    found = find_samples(root, require_masks=False)
    s1, s2, u = found.splits["all"]
    assert (s1.id, s2.id, u.id) == ("s1", "s2", "u")
    assert s1.instance_masks and u.masks == ()
    # Natural order: s2_2 before s2_10, so labels follow the file numbering.
    assert [p.name for p in s2.masks[:3]] == ["s2_1.png", "s2_2.png", "s2_3.png"]
    assert s2.masks[-1].name == "s2_11.png"


def test_dsb2018_in_split_folders(tmp_path: Path) -> None:
    make_dsb(tmp_path / "train", {"a": [MASK], "b": [MASK]})
    make_dsb(tmp_path / "test", {"c": None})
    found = find_samples(tmp_path, require_masks=False)
    assert found.layout == "dsb2018"
    assert {k: len(v) for k, v in found.splits.items()} == {"train": 2, "test": 1}


def test_layouts_registry_and_unknown_layout(tmp_path: Path) -> None:
    assert set(LAYOUTS) == {"folders", "dsb2018", "cityscapes"}
    make_folders(tmp_path, ["a"])
    with pytest.raises(ValueError, match="folders"):
        find_samples(tmp_path, layout="kitti")


def test_unrecognised_layout_lists_the_layouts(tmp_path: Path) -> None:
    write_png(tmp_path / "photo.png", IMAGE)
    with pytest.raises(DataError) as info:
        detect_layout(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "folders" in str(info.value) and "dsb2018" in str(info.value)


@pytest.mark.parametrize("case", ["missing", "file", "empty", "empty-images"])
def test_folder_level_problems_raise_even_with_skip_bad(tmp_path: Path, case: str) -> None:
    root = tmp_path / "data"
    if case == "file":
        root.write_text("x")
    elif case == "empty":
        root.mkdir()
    elif case == "empty-images":
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
    with raises_naming("data"):
        find_samples(root, skip_bad=True)


def test_empty_split_folder_raises(tmp_path: Path) -> None:
    make_folders(tmp_path / "train", ["a"])
    (tmp_path / "val" / "images").mkdir(parents=True)
    with raises_naming("val"):
        find_samples(tmp_path)


@pytest.mark.parametrize(
    ("masks", "bad_file"),
    [
        (["a.png"], "b.png"),  # image without mask
        (["a.png", "b.png", "z.png"], "z.png"),  # mask without image
        (["a.png", "a_mask.png", "b.png"], "a_mask.png"),  # two masks for one image
    ],
)
def test_per_sample_problems_raise_or_are_skipped(
    tmp_path: Path, masks: list[str], bad_file: str
) -> None:
    root = make_folders(tmp_path, ["a", "b"], masks=masks)
    with raises_naming(bad_file):
        find_samples(root)
    found = find_samples(root, skip_bad=True)
    assert [s.path.name for s in found.skipped] == [bad_file]
    assert found.splits["all"]  # the good samples are kept


def test_duplicate_stems_and_unsupported_formats(tmp_path: Path) -> None:
    root = make_folders(tmp_path, ["a", "b"])
    write_png(root / "images" / "a.jpg", IMAGE)
    (root / "images" / "c.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match=r"c\.bmp: unsupported image format .* 1 more problem"):
        find_samples(root)
    found = find_samples(root, skip_bad=True)
    assert [s.id for s in found.splits["all"]] == ["b"]
    assert sorted(s.path.name for s in found.skipped) == ["a.png", "c.bmp"]
    assert "a.jpg, a.png" in found.skipped[1].reason


def test_missing_masks_folder(tmp_path: Path) -> None:
    write_png(tmp_path / "images" / "a.png", IMAGE)
    with raises_naming(tmp_path.name):
        find_samples(tmp_path)
    assert find_samples(tmp_path, require_masks=False).splits["all"][0].masks == ()


def test_same_id_in_two_splits_is_reported(tmp_path: Path) -> None:
    make_folders(tmp_path / "train", ["a", "b"])
    make_folders(tmp_path / "test", ["a"])
    with pytest.raises(DataError, match="also in split 'train'"):
        find_samples(tmp_path)


def test_dsb2018_union_and_instance_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.uint8) * 255
    second = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]], np.uint8) * 255
    third = np.array([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8) * 255
    make_dsb(tmp_path, {"s": [first, second, third]})
    (sample,) = find_samples(tmp_path).splits["all"]
    with caplog.at_level(logging.WARNING, logger="seglab.data.loading"):
        loaded = load_sample(sample)
    # Pixel (1, 1) is in the first two masks: one overlapping pixel, reported as a warning.
    assert "1 pixels belong to several nucleus masks" in caplog.text
    np.testing.assert_array_equal(loaded.instances, [[1, 1, 0, 3], [1, 1, 2, 0], [0, 2, 2, 0]])
    assert loaded.instances is not None and loaded.instances.dtype == np.int32
    np.testing.assert_array_equal(loaded.mask, loaded.instances > 0)
    np.testing.assert_array_equal(loaded.image, IMAGE[..., None])


def test_folders_sample_has_mask_but_no_instances(tmp_path: Path) -> None:
    (sample,) = find_samples(make_folders(tmp_path, ["a"])).splits["all"]
    loaded = load_sample(sample)
    assert loaded.instances is None
    np.testing.assert_array_equal(loaded.mask, MASK > 0)


def test_mask_of_another_size_names_both_files(tmp_path: Path) -> None:
    root = make_folders(tmp_path, ["a"], masks=[])
    write_png(root / "masks" / "a.png", np.zeros((5, 4), np.uint8))
    (sample,) = find_samples(root).splits["all"]
    with pytest.raises(DataError, match="nearest-neighbour") as info:
        load_sample(sample)
    assert "masks/a.png" in str(info.value) and "images/a.png" in str(info.value)
    assert "4x5" in str(info.value) and "4x3" in str(info.value)


def test_load_samples_keeps_order_and_skips_bad(tmp_path: Path) -> None:
    root = make_folders(tmp_path, [f"s{i}" for i in range(6)])
    data = (root / "images" / "s3.png").read_bytes()
    (root / "images" / "s3.png").write_bytes(data[: len(data) // 2])
    samples = find_samples(root).splits["all"]
    with pytest.raises(DataError, match=r"s3\.png"):
        load_samples(samples)
    loaded, skipped = load_samples(samples, skip_bad=True, progress=True)
    assert [s.id for s in loaded] == ["s0", "s1", "s2", "s4", "s5"]
    assert [s.path.name for s in skipped] == ["s3.png"]


def fake_samples(n: int) -> list[Sample]:
    return [Sample(f"s{i:03d}", Path(f"s{i:03d}.png"), ()) for i in range(n)]


def test_split_samples_is_deterministic_disjoint_and_covering() -> None:
    samples = fake_samples(40)
    split = split_samples(samples, 0.2, 0.1, seed=3)
    assert split == split_samples(list(reversed(samples)), 0.2, 0.1, seed=3)
    assert split != split_samples(samples, 0.2, 0.1, seed=4)
    assert [len(split[k]) for k in ("train", "val", "test")] == [28, 8, 4]
    ids = [s.id for part in split.values() for s in part]
    assert sorted(ids) == [s.id for s in samples]


@pytest.mark.parametrize(
    ("n", "expected"), [(0, [0, 0, 0]), (1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1])]
)
def test_split_samples_small_sets(n: int, expected: list[int]) -> None:
    split = split_samples(fake_samples(n))
    assert [len(split[k]) for k in ("train", "val", "test")] == expected


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (1.0, 0.0), (0.6, 0.4), (0.2, 1.5)])
def test_split_samples_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split_samples(fake_samples(10), val, test)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 60),
    val=st.floats(0, 0.45),
    test=st.floats(0, 0.45),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_samples_properties(n: int, val: float, test: float, seed: int) -> None:
    split = split_samples(fake_samples(n), val, test, seed)
    ids = sorted(s.id for part in split.values() for s in part)
    assert ids == [f"s{i:03d}" for i in range(n)]  # disjoint and covering
    if n >= 1:
        assert split["train"]
    if n >= 2 and val > 0:
        assert split["val"]
    if test == 0:
        assert not split["test"]
