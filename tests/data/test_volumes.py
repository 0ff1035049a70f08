"""Tests for seglab.data.volumes: reading, writing, layout discovery and synthetic 3D blobs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from seglab.data.volumes import (
    Volume,
    find_volumes,
    load_volume_pair,
    make_blobs3d,
    read_volume,
    volume_stem,
    write_blobs3d,
    write_volume,
)
from seglab.errors import DataError


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 5, 6, 2)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip_keeps_data_and_spacing(tmp_path: Path, shape, dtype) -> None:
    data = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    path = tmp_path / "vol.tif"
    write_volume(path, data, spacing=(2.0, 0.5, 0.25))
    volume = read_volume(path)
    assert volume.data.dtype == dtype
    np.testing.assert_array_equal(volume.data, data)
    assert volume.spacing == pytest.approx((2.0, 0.5, 0.25))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_tiff_without_spacing_reads_none(tmp_path: Path) -> None:
    write_volume(tmp_path / "vol.tif", np.zeros((3, 4, 5), np.uint8))
    assert read_volume(tmp_path / "vol.tif").spacing is None


def test_npy_round_trip(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4)
    write_volume(tmp_path / "vol.npy", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.npy"]
    volume = read_volume(tmp_path / "vol.npy")
    np.testing.assert_array_equal(volume.data, data)
    assert volume.spacing is None


def test_tiff_rejects_int32(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="uint16"):
        write_volume(tmp_path / "vol.tif", np.zeros((2, 3, 4), np.int32))


@pytest.mark.parametrize("name", ["flat.tif", "flat.npy"])
def test_2d_file_is_rejected_naming_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    image = np.zeros((8, 9), np.uint8)
    if name.endswith(".tif"):
        tifffile.imwrite(path, image)
    else:
        np.save(path, image)
    with pytest.raises(DataError, match=r"expected a 3D stack \(D, H, W\).*\(8, 9\)") as info:
        read_volume(path)
    assert info.value.path == path


@pytest.mark.parametrize("name", ["bad.tif", "bad.npy", "bad.xyz"])
def test_corrupt_or_unknown_file_raises_data_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"not a volume at all")
    with pytest.raises(DataError) as info:
        read_volume(path)
    assert info.value.path == path


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_volume(tmp_path / "nope.tif")


def test_shape_mismatch_names_both_files_and_shapes(tmp_path: Path) -> None:
    write_volume(tmp_path / "img.tif", np.zeros((4, 5, 6), np.uint8))
    write_volume(tmp_path / "lab.tif", np.zeros((4, 5, 7), np.uint16))
    with pytest.raises(DataError) as info:
        load_volume_pair(tmp_path / "img.tif", tmp_path / "lab.tif")
    message = str(info.value)
    assert "lab.tif" in message and "img.tif" in message
    assert "(4, 5, 7)" in message and "(4, 5, 6)" in message


def test_load_volume_pair_gives_int32_labels(tmp_path: Path) -> None:
    labels = np.zeros((4, 5, 6), np.uint16)
    labels[1, 2, 3] = 7
    write_volume(tmp_path / "img.npy", np.zeros((4, 5, 6, 2), np.float32))
    write_volume(tmp_path / "lab.tif", labels)
    image, loaded = load_volume_pair(tmp_path / "img.npy", tmp_path / "lab.tif")
    assert image.data.shape == (4, 5, 6, 2)
    assert loaded is not None and loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, labels)
    assert load_volume_pair(tmp_path / "img.npy", None)[1] is None


def test_volume_stem_handles_double_suffix() -> None:
    assert volume_stem("a/case_01.nii.gz") == "case_01"
    assert volume_stem("case.02.NII.GZ") == "case.02"
    assert volume_stem(Path("b.tif")) == "b"


def test_blobs3d_is_deterministic_and_labels_mark_bright_blobs() -> None:
    first, again, other = (
        make_blobs3d(2, 24, seed=1),
        make_blobs3d(2, 24, seed=1),
        make_blobs3d(1, 24, seed=2),
    )
    for (image, labels), (image2, labels2) in zip(first, again):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(first[0][0], other[0][0])
    for image, labels in first:
        assert image.shape == labels.shape == (24, 24, 24)
        assert image.dtype == np.uint8 and labels.dtype == np.int32
        k = int(labels.max())
        assert k >= 1 and set(np.unique(labels)) == set(range(k + 1))  # 1..K without gaps
        assert image[labels > 0].mean() > image[labels == 0].mean() + 50


def test_write_blobs3d_then_find_volumes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    counts = write_blobs3d(out, 5, size=16, seed=0, splits=(0.6, 0.2, 0.2))
    assert counts == {"train": 3, "val": 1, "test": 1}
    assert not (tmp_path / "data.partial").exists()
    found = find_volumes(out)
    assert {split: len(entries) for split, entries in found.items()} == counts
    stem, image_path, label_path = found["train"][0]
    assert stem == "blobs3d_0000" and label_path is not None
    image, labels = load_volume_pair(image_path, label_path)
    assert image.data.shape == (16, 16, 16) and image.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert labels is not None and labels.max() >= 1
    with pytest.raises(DataError, match="not empty"):
        write_blobs3d(out, 1, size=16)


def test_find_volumes_flat_layout_mixed_suffixes(tmp_path: Path) -> None:
    write_blobs3d(tmp_path / "d", 2, size=16, splits=None)
    labels = tmp_path / "d" / "labels"
    (labels / "blobs3d_0001.tif").rename(labels / "blobs3d_0001.nii.gz")  # stem matching only
    found = find_volumes(tmp_path / "d")
    assert list(found) == ["all"]
    assert [stem for stem, _, _ in found["all"]] == ["blobs3d_0000", "blobs3d_0001"]
    assert found["all"][1][2] == labels / "blobs3d_0001.nii.gz"


def test_find_volumes_errors_name_the_culprit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images"):
        find_volumes(tmp_path)
    write_blobs3d(tmp_path / "d", 2, size=16, splits=None)
    missing = tmp_path / "d" / "labels" / "blobs3d_0001.tif"
    missing.unlink()
    with pytest.raises(DataError, match="has no labels") as info:
        find_volumes(tmp_path / "d")
    assert info.value.path.name == "blobs3d_0001.tif"


def test_find_volumes_without_labels_folder_gives_none(tmp_path: Path) -> None:
    write_volume(tmp_path / "images" / "a.npy", np.zeros((2, 3, 4), np.uint8))
    assert find_volumes(tmp_path) == {"all": [("a", tmp_path / "images" / "a.npy", None)]}


def test_nifti_missing_nibabel_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "nibabel", None)  # makes `import nibabel` fail
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(b"\x00" * 400)
    with pytest.raises(DataError, match="pip install nibabel") as info:
        read_volume(path)
    assert info.value.path == path


def test_nifti_round_trip_transposes_to_zyx(tmp_path: Path) -> None:
    nibabel = pytest.importorskip("nibabel")
    xyz = np.random.default_rng(0).integers(0, 100, (6, 5, 4)).astype(np.int16)
    image = nibabel.Nifti1Image(xyz, affine=np.diag([0.5, 0.7, 3.0, 1.0]))
    image.header.set_zooms((0.5, 0.7, 3.0))
    nibabel.save(image, tmp_path / "scan.nii.gz")
    volume = read_volume(tmp_path / "scan.nii.gz")
    assert isinstance(volume, Volume)
    np.testing.assert_array_equal(volume.data, xyz.transpose(2, 1, 0))
    assert volume.spacing == pytest.approx((3.0, 0.7, 0.5))
