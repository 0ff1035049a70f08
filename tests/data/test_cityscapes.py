"""The Cityscapes layout (pairing, problems, detection) and reading label images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from seglab.data.cityscapes import find_cityscapes
from seglab.data.io import read_label_image, write_png
from seglab.data.labels import cityscapes_mapping
from seglab.data.layouts import LAYOUTS, detect_layout, find_samples
from seglab.data.loading import load_sample
from seglab.errors import DataError

IMAGE = np.full((4, 8, 3), 90, np.uint8)
LABEL_IDS = np.array([[7, 7, 8, 26], [23, 0, 11, 24]], np.uint8).repeat(2, 0).repeat(2, 1)


def image_path(root: Path, split: str, sample_id: str) -> Path:
    city = sample_id.split("_")[0]
    return root / "leftImg8bit" / split / city / f"{sample_id}_leftImg8bit.png"


def label_path(root: Path, split: str, sample_id: str) -> Path:
    city = sample_id.split("_")[0]
    return root / "gtFine" / split / city / f"{sample_id}_gtFine_labelIds.png"


def make_cityscapes(
    root: Path, images: dict[str, list[str]], labels: dict[str, list[str]] | None = None
) -> Path:
    """Split -> sample ids with an image; split -> ids with labels (default: the same)."""
    for split, ids in images.items():
        for sample_id in ids:
            write_png(image_path(root, split, sample_id), IMAGE)
    for split, ids in (images if labels is None else labels).items():
        for sample_id in ids:
            write_png(label_path(root, split, sample_id), LABEL_IDS)
            colour = label_path(root, split, sample_id).with_name(f"{sample_id}_gtFine_color.png")
            write_png(colour, np.full((4, 8, 3), (128, 64, 128), np.uint8))
    return root


def test_pairs_images_and_labels_by_city_and_frame(tmp_path: Path) -> None:
    root = make_cityscapes(
        tmp_path,
        {
            "train": ["aachen_000001_000019", "aachen_000000_000019", "bremen_000000_000019"],
            "val": ["lindau_000000_000019"],
        },
    )
    (label_path(root, "train", "aachen_000000_000019").parent / "x_polygons.json").write_text("{}")
    found = find_samples(root)
    assert found.layout == "cityscapes" and not found.skipped
    assert list(found.splits) == ["train", "val"]
    train = found.splits["train"]
    assert [s.id for s in train] == [
        "aachen_000000_000019",
        "aachen_000001_000019",
        "bremen_000000_000019",
    ]
    for sample in train:
        assert sample.image == image_path(root, "train", sample.id)
        assert sample.masks == (label_path(root, "train", sample.id),)  # not the _color file
        assert not sample.instance_masks


def test_detect_layout_and_registry(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, {"val": ["ulm_000000_000001"]})
    assert detect_layout(tmp_path) == "cityscapes"
    assert "cityscapes" in LAYOUTS
    assert find_samples(tmp_path, layout="cityscapes").splits["val"][0].id == "ulm_000000_000001"


def test_city_without_labels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_cityscapes(
        tmp_path,
        {"train": ["aachen_000000_000001", "bochum_000000_000001"]},
        {"train": ["aachen_000000_000001"]},
    )
    with pytest.raises(DataError, match="city folder without labels") as info:
        find_samples(root)
    assert info.value.path == root / "leftImg8bit" / "train" / "bochum"
    with caplog.at_level(logging.WARNING):
        found = find_samples(root, skip_bad=True)
    assert [s.id for s in found.splits["train"]] == ["aachen_000000_000001"]
    assert "bochum" in caplog.text


def test_unpaired_image_and_unpaired_label(tmp_path: Path) -> None:
    root = make_cityscapes(
        tmp_path,
        {"train": ["jena_000000_000001", "jena_000000_000002"]},
        {"train": ["jena_000000_000001", "jena_000000_000003"]},
    )
    with pytest.raises(DataError, match="image without its labelIds file") as info:
        find_samples(root)
    assert info.value.path == image_path(root, "train", "jena_000000_000002")
    assert "jena_000000_000002_gtFine_labelIds.png" in str(info.value)
    found = find_samples(root, skip_bad=True)
    assert [s.id for s in found.splits["train"]] == ["jena_000000_000001"]
    assert {problem.path for problem in found.skipped} == {
        image_path(root, "train", "jena_000000_000002"),
        label_path(root, "train", "jena_000000_000003"),
    }
    orphan = next(p for p in found.skipped if p.path.name.endswith("labelIds.png"))
    assert "without an image" in orphan.reason


def test_labels_for_a_city_without_images(tmp_path: Path) -> None:
    root = make_cityscapes(
        tmp_path, {"val": ["ulm_000000_000001"]}, {"val": ["ulm_000000_000001", "zurich_0_1"]}
    )
    found = find_samples(root, skip_bad=True)
    assert [p.path for p in found.skipped] == [root / "gtFine" / "val" / "zurich"]


def test_badly_named_image_is_a_problem(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path, {"train": ["ulm_000000_000001"]})
    write_png(root / "leftImg8bit" / "train" / "ulm" / "photo.png", IMAGE)
    found = find_samples(root, skip_bad=True)
    assert [p.path.name for p in found.skipped] == ["photo.png"]
    assert len(found.splits["train"]) == 1


def test_nothing_pairs(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path, {"train": ["ulm_000000_000001"]}, {"val": ["ulm_0_2"]})
    with pytest.raises(DataError, match="no image pairs") as info:
        find_cityscapes(root)
    assert info.value.path == root
    assert "leftImg8bit/<split>/<city>/" in str(info.value)
    assert "gtFine/<split>/<city>/" in str(info.value)
    with pytest.raises(DataError, match="no leftImg8bit"):
        find_cityscapes(tmp_path / "gtFine")


def test_unlabelled_images_for_prediction(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path, {"test": ["berlin_000000_000001"]}, {})
    splits, skipped = find_cityscapes(root, require_masks=False)
    assert not skipped and splits["test"][0].masks == ()


def test_labels_load_through_the_mapping(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path, {"train": ["ulm_000000_000001"]})
    sample = find_samples(root).splits["train"][0]
    loaded = load_sample(sample, cityscapes_mapping("categories", "ignore"))
    # ids 7, 7, 8, 26 / 23, 0, 11, 24 -> flat 0, 0, 0, vehicle 6 / sky 4, void, construction 1,
    # human 5; each pixel doubled in both directions.
    expected = np.array([[0, 0, 0, 6], [4, 255, 1, 5]]).repeat(2, 0).repeat(2, 1)
    assert loaded.mask is not None
    np.testing.assert_array_equal(loaded.mask, expected)


def test_read_label_image_kinds(tmp_path: Path) -> None:
    write_png(tmp_path / "gray.png", LABEL_IDS)
    np.testing.assert_array_equal(read_label_image(tmp_path / "gray.png"), LABEL_IDS)
    wide = (LABEL_IDS.astype(np.uint16) * 1000).astype(np.uint16)
    write_png(tmp_path / "wide.png", wide)
    assert read_label_image(tmp_path / "wide.png").dtype == np.uint16
    np.testing.assert_array_equal(read_label_image(tmp_path / "wide.png"), wide)
    write_png(tmp_path / "rgb.png", np.repeat(LABEL_IDS[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_label_image(tmp_path / "rgb.png"), LABEL_IDS)
    tifffile.imwrite(tmp_path / "labels.tif", wide)
    np.testing.assert_array_equal(read_label_image(tmp_path / "labels.tif"), wide)
    palette_image = Image.fromarray(LABEL_IDS, mode="L").convert("P")
    palette_image.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    palette_image.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(read_label_image(tmp_path / "voc.png"), LABEL_IDS)


def test_colour_mask_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "aachen_000000_000019_gtFine_color.png"
    colours = np.zeros((4, 8, 3), np.uint8)
    colours[:2] = (128, 64, 128)
    colours[2:] = (70, 130, 180)
    write_png(path, colours)
    with pytest.raises(DataError, match="labelIds") as info:
        read_label_image(path)
    assert info.value.path == path and "colour" in str(info.value)
