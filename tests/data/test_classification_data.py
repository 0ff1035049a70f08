"""Classification data: IDX files, class folders, scikit-learn's digits, stratified splits."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seglab.data.classification import (
    CLASSIFICATION_LAYOUTS,
    ClassificationData,
    detect_classification_layout,
    load_class_folders,
    load_classification,
    load_digits,
    load_idx,
    read_idx,
    stratified_folds,
    stratified_split,
)
from seglab.data.io import write_png
from seglab.errors import ConfigError, DataError

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (10, 28, 28), dtype=np.uint8)
LABELS = np.arange(10, dtype=np.uint8)[::-1].copy()  # every digit once, in an order that shows


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding written by hand: magic (0, 0, type, ndim), big-endian sizes, raw data."""
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    return header + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist(root: Path, gz: bool = False, dotted: bool = False) -> Path:
    """A tiny MNIST folder: 10 train images (labels 9..0) and 4 test images."""
    root.mkdir(parents=True, exist_ok=True)
    sep, suffix = ("." if dotted else "-"), (".gz" if gz else "")
    for prefix, n in (("train", 10), ("t10k", 4)):
        write_idx(root / f"{prefix}-images{sep}idx3-ubyte{suffix}", IMAGES[:n], gz)
        write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{suffix}", LABELS[:n], gz)
    return root


def assert_names(error: pytest.ExceptionInfo[DataError], path: Path) -> None:
    assert error.value.path == path
    assert str(path) in str(error.value)


# --- read_idx ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", [IMAGES, LABELS, IMAGES[:3, :5, :7]], ids=["3d", "1d", "odd"])
def test_read_idx_round_trip(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    got = read_idx(write_idx(tmp_path / "file.idx", array, gz))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, array)
    got[0] = 0  # callers may modify the result in place


def test_read_idx_header_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "tiny"
    path.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])


def test_read_idx_gz_name_with_plain_content(tmp_path: Path) -> None:
    # Browsers often decompress the MNIST downloads but keep the .gz name.
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", LABELS, gz=False)
    np.testing.assert_array_equal(read_idx(path), LABELS)


def _png_bytes(tmp_path: Path) -> bytes:
    write_png(tmp_path / "real.png", IMAGES[0])
    return (tmp_path / "real.png").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text", lambda _: b"label,image\n3,foo.png\n", "not an IDX file"),
        ("png", _png_bytes, "PNG"),
        ("empty", lambda _: b"", "not an IDX file"),
        ("float32", lambda _: idx_bytes(LABELS.astype(">f4"), 0x0D), "0x0d"),
        ("truncated", lambda _: idx_bytes(IMAGES)[:-1], "truncated"),
        ("truncated_header", lambda _: idx_bytes(IMAGES)[:9], "truncated IDX header"),
        ("trailing", lambda _: idx_bytes(IMAGES) + b"\x00\x00", "2 unexpected bytes"),
        ("bad_gzip", lambda _: gzip.compress(idx_bytes(IMAGES))[:-10], "gzip"),
    ],
)
def test_read_idx_rejects_bad_files(
    tmp_path: Path, name: str, content: Callable[[Path], bytes], message: str
) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content(tmp_path))
    with pytest.raises(DataError, match=message) as error:
        read_idx(path)
    assert_names(error, path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope")


# --- load_idx ------------------------------------------------------------------------------


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True)])
def test_load_idx(tmp_path: Path, gz: bool, dotted: bool) -> None:
    splits = load_idx(write_mnist(tmp_path / "mnist", gz, dotted))
    assert set(splits) == {"train", "test"}
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (10, 28, 28, 1) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images[..., 0], IMAGES)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.labels, LABELS)
    np.testing.assert_array_equal(test.labels, [9, 8, 7, 6])
    assert train.class_names == test.class_names == [str(d) for d in range(10)]
    assert len(set(train.ids)) == 10 and train.ids[3].endswith(":3")


def test_load_idx_maps_label_values_to_shared_indices(tmp_path: Path) -> None:
    # EMNIST letters number their classes from 1; labels must still be 0..K-1 in every split.
    write_idx(tmp_path / "train-images-idx3-ubyte", IMAGES[:3])
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([5, 2, 5], np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", IMAGES[:2])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([7, 2], np.uint8))
    splits = load_idx(tmp_path)
    assert splits["train"].class_names == ["2", "5", "7"]
    np.testing.assert_array_equal(splits["train"].labels, [1, 0, 1])
    np.testing.assert_array_equal(splits["test"].labels, [2, 0])


def test_load_idx_label_count_mismatch_names_both_files(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "train-images-idx3-ubyte", IMAGES[:5])
    labels = write_idx(tmp_path / "train-labels-idx1-ubyte", LABELS[:4])
    with pytest.raises(DataError, match="5 images") as error:
        load_idx(tmp_path)
    assert_names(error, images)
    assert str(labels) in str(error.value) and "4 labels" in str(error.value)


@pytest.mark.parametrize("missing", ["labels", "images"])
def test_load_idx_missing_partner_file(tmp_path: Path, missing: str) -> None:
    write_mnist(tmp_path)
    (tmp_path / f"t10k-{missing}-idx{1 if missing == 'labels' else 3}-ubyte").unlink()
    with pytest.raises(DataError, match=f"{missing} file not found") as error:
        load_idx(tmp_path)
    assert error.value.path.name == f"t10k-{missing}-idx{1 if missing == 'labels' else 3}-ubyte"


def test_load_idx_swapped_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", LABELS)
    write_idx(tmp_path / "train-labels-idx1-ubyte", IMAGES)
    with pytest.raises(DataError, match="expected N"):
        load_idx(tmp_path)


def test_load_idx_no_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no IDX files"):
        load_idx(tmp_path)


# --- class folders -------------------------------------------------------------------------


def write_classes(root: Path, counts: dict[str, int], size: tuple[int, ...] = (6, 5)) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_png(root / name / f"{name}_{i}.png", np.full(size, 10 * i, np.uint8))
    return root


def test_load_class_folders_without_splits(tmp_path: Path) -> None:
    root = write_classes(tmp_path / "data", {"dog": 2, "cat": 3})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / "README.md").write_text("ignored")
    splits = load_class_folders(root)
    assert list(splits) == ["all"]
    data = splits["all"]
    assert data.class_names == ["cat", "dog"]
    assert data.images.shape == (5, 6, 5, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1])
    assert data.ids[0] == str(root / "cat" / "cat_0.png")
    assert data.images[1, 0, 0, 0] == 10


def test_load_class_folders_with_splits_agree_on_labels(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_classes(root / "train", {"a": 2, "b": 2, "c": 1})
    write_classes(root / "test", {"a": 1, "c": 2})  # no "b": c must still be label 2
    splits = load_class_folders(root)
    assert set(splits) == {"train", "test"}
    assert splits["train"].class_names == splits["test"].class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(splits["test"].labels, [0, 2, 2])
    np.testing.assert_array_equal(splits["train"].labels, [0, 0, 1, 1, 2])


def test_load_class_folders_rgb(tmp_path: Path) -> None:
    root = write_classes(tmp_path, {"x": 2, "y": 1}, size=(4, 4, 3))
    assert load_class_folders(root)["all"].images.shape == (3, 4, 4, 3)


def test_load_class_folders_empty_class(tmp_path: Path) -> None:
    root = write_classes(tmp_path / "data", {"cat": 2})
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images") as error:
        load_class_folders(root)
    assert_names(error, root / "dog")


@pytest.mark.parametrize(
    ("odd_size", "message"),
    [((7, 5), "5x7 uint8 pixels, 1 channel;"), ((6, 5, 3), "5x6 uint8 pixels, 3 channels")],
)
def test_load_class_folders_mixed_sizes(
    tmp_path: Path, odd_size: tuple[int, ...], message: str
) -> None:
    root = write_classes(tmp_path / "data", {"cat": 2, "dog": 1})
    odd = root / "dog" / "odd.png"
    write_png(odd, np.zeros(odd_size, np.uint8))
    with pytest.raises(DataError, match=message) as error:
        load_class_folders(root)
    assert_names(error, odd)
    assert "expected 5x6 uint8 pixels, 1 channel like" in str(error.value)
    assert "resize" in error.value.hint


def test_load_class_folders_16bit(tmp_path: Path) -> None:
    root = write_classes(tmp_path / "data", {"cat": 1})
    write_png(root / "cat" / "deep.png", np.zeros((6, 5), np.uint16))
    with pytest.raises(DataError, match="uint16") as error:
        load_class_folders(root)
    assert_names(error, root / "cat" / "deep.png")


@pytest.mark.parametrize("setup", ["missing", "empty", "loose_images"])
def test_load_class_folders_bad_root(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "data"
    if setup != "missing":
        root.mkdir()
    if setup == "loose_images":
        write_png(root / "a.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(DataError) as error:
        load_class_folders(root)
    assert_names(error, root)


# --- digits and dispatch -------------------------------------------------------------------


def test_load_digits() -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    data = load_digits()["all"]
    assert len(data) == 1797 and data.images.shape == (1797, 8, 8, 1)
    assert data.images.dtype == np.uint8 and data.images.min() == 0 and data.images.max() == 255
    assert data.class_names == [str(d) for d in range(10)]
    assert sorted(set(data.labels.tolist())) == list(range(10))
    raw = sklearn_digits()
    # Golden values: 16 -> 255, 8 -> 127.5 -> 128, 1 -> 15.9 -> 16.
    for value, scaled in ((16, 255), (8, 128), (1, 16), (0, 0)):
        assert set(data.images[..., 0][raw.images == value].tolist()) == {scaled}
    assert data.ids[5] == "digits:5"


@pytest.mark.parametrize("root", [None, "digits"])
def test_load_classification_digits(root: str | None) -> None:
    layout, splits = load_classification(root)
    assert layout == "digits" and len(splits["all"]) == 1797


def test_load_classification_detects_layouts(tmp_path: Path) -> None:
    mnist = write_mnist(tmp_path / "mnist", gz=True)
    folders = write_classes(tmp_path / "folders", {"a": 1, "b": 1})
    split_folders = write_classes(tmp_path / "split" / "train", {"a": 1}).parent
    assert detect_classification_layout(mnist) == "idx"
    assert detect_classification_layout(folders) == "class_folders"
    assert detect_classification_layout(split_folders) == "class_folders"
    layout, splits = load_classification(mnist)
    assert layout == "idx" and len(splits["test"]) == 4
    assert load_classification(str(folders), "class_folders")[0] == "class_folders"
    assert set(CLASSIFICATION_LAYOUTS) == {"idx", "class_folders"}


def test_load_classification_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="idx, class_folders"):
        load_classification(tmp_path, "imagenet")
    with pytest.raises(ConfigError, match="needs a data folder"):
        load_classification(None, "idx")
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match="cannot tell the dataset layout") as error:
        detect_classification_layout(tmp_path)
    assert "class_folders" in error.value.hint and "idx" in error.value.hint


def test_subset() -> None:
    data = ClassificationData(
        IMAGES[..., None], LABELS.astype(np.int64), ["x"] * 10, list("abcdefghij")
    )
    part = data.subset(np.array([3, 1]))
    assert part.ids == ["d", "b"] and len(part) == 2
    np.testing.assert_array_equal(part.images, IMAGES[[3, 1], ..., None])
    np.testing.assert_array_equal(part.labels, [6, 8])
    assert data.subset(LABELS > 7).ids == ["a", "b"]
    assert len(data.subset([])) == 0
    with pytest.raises(ValueError, match="one label"):
        ClassificationData(IMAGES[..., None], LABELS[:3], ["x"], ["a"] * 10)


def test_module_does_not_import_torch() -> None:
    # The data layer must stay usable (and fast to import) without torch.
    code = "import sys, seglab.data.classification as m; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- stratified splits ---------------------------------------------------------------------


def assert_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and set(joined.tolist()) == set(range(n))


def test_stratified_split_golden() -> None:
    labels = np.array([0] * 20 + [1] * 10 + [2] * 1)
    parts = stratified_split(labels, 0.15, 0.15, seed=3)
    assert_partition(list(parts.values()), len(labels))
    # Class 0: 20 * 0.15 = 3 each; class 1: 1.5 rounds up to 2 each; class 2 keeps its one image.
    for name, expected in (("train", [14, 6, 1]), ("val", [3, 2, 0]), ("test", [3, 2, 0])):
        assert np.bincount(labels[parts[name]], minlength=3).tolist() == expected
    again = stratified_split(labels, 0.15, 0.15, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = stratified_split(labels, 0.15, 0.15, seed=4)
    assert not np.array_equal(parts["val"], other["val"])


def test_stratified_split_rounds_halves_up_and_keeps_one_for_train() -> None:
    # 10 * 0.25 = 2.5 exactly: halves go up (as split_samples does), not to even.
    parts = stratified_split(np.zeros(10, int), 0.25, 0.25)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [4, 3, 3]
    # Test would take every image (round(2 * 0.9) = 2, round(1 * 0.9) = 1): train keeps one.
    labels = np.array([0, 0, 1])
    parts = stratified_split(labels, 0.0, 0.9)
    assert np.bincount(labels[parts["train"]]).tolist() == [1, 1]
    assert labels[parts["test"]].tolist() == [0] and len(parts["val"]) == 0


def test_stratified_split_without_test_and_bad_fractions() -> None:
    labels = np.repeat([0, 1], 10)
    parts = stratified_split(labels, 0.2, 0.0)
    assert set(parts) == {"train", "val"}
    assert np.bincount(labels[parts["val"]]).tolist() == [2, 2]
    for fractions in ((0.5, 0.5), (-0.1, 0.1), (1.0, 0.0)):
        with pytest.raises(ValueError, match="val_fraction"):
            stratified_split(labels, *fractions)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=80),
    val=st.floats(0, 0.45),
    test=st.floats(0, 0.45),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_properties(labels: list[int], val: float, test: float, seed: int) -> None:
    array = np.array(labels)
    parts = stratified_split(array, val, test, seed)
    assert_partition(list(parts.values()), len(array))
    for value in np.unique(array):
        n = int((array == value).sum())
        assert (array[parts["train"]] == value).sum() >= 1
        assert abs((array[parts["val"]] == value).sum() - n * val) <= 1


def test_stratified_folds_golden_and_deterministic() -> None:
    labels = np.repeat([0, 1, 2], [7, 5, 3])
    folds = stratified_folds(labels, k=3, seed=1)
    assert_partition(folds, len(labels))
    assert sorted(len(f) for f in folds) == [5, 5, 5]
    assert all(np.bincount(labels[f], minlength=3)[2] == 1 for f in folds)
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(labels, 3, seed=1)))


@pytest.mark.parametrize(("k", "message"), [(1, "k >= 2"), (4, "class 2 has 3")])
def test_stratified_folds_errors(k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_folds(np.repeat([0, 1, 2], [7, 5, 3]), k=k)


@settings(max_examples=80, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=2, max_size=120),
    k=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_stratified_folds_properties(labels: list[int], k: int, seed: int) -> None:
    array = np.array(labels)
    if np.bincount(array)[np.unique(array)].min() < k:
        with pytest.raises(ValueError, match="at least"):
            stratified_folds(array, k, seed)
        return
    folds = stratified_folds(array, k, seed)
    assert len(folds) == k
    assert_partition(folds, len(array))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for value in np.unique(array):
        share = [(array[f] == value).sum() for f in folds]
        n = (array == value).sum()
        assert all(abs(s - n / k) < 1 for s in share)  # within ±1 of the even split
