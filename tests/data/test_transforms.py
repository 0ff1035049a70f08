"""Augmentation pipeline and in-memory dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seglab.config import AugmentConfig, DataConfig
from seglab.data.dataset import ArraySample, SegmentationDataset, foreground_fraction
from seglab.data.transforms import build_augmentation, resize_image, resize_mask

EVERYTHING = AugmentConfig(
    hflip=1, vflip=1, rotate90=1, brightness_contrast=1, noise=1, blur=1, affine=1
)


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.random((32, 32, 3), dtype=np.float32)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 8:28] = 1
    return image, mask


def test_all_augmentations_keep_masks_binary_and_shapes() -> None:
    pipeline = build_augmentation(EVERYTHING, seed=0)
    assert pipeline is not None
    image, mask = _pair()
    out = pipeline(image=image, mask=mask)
    assert out["image"].shape == image.shape and out["image"].dtype == np.float32
    assert out["mask"].shape == mask.shape
    assert set(np.unique(out["mask"])) <= {0, 1}


def test_augmentation_is_seeded() -> None:
    image, mask = _pair()
    first = build_augmentation(EVERYTHING, seed=3)(image=image, mask=mask)  # type: ignore[misc]
    second = build_augmentation(EVERYTHING, seed=3)(image=image, mask=mask)  # type: ignore[misc]
    assert np.array_equal(first["image"], second["image"])
    assert np.array_equal(first["mask"], second["mask"])


def test_flips_move_image_and_mask_together() -> None:
    pipeline = build_augmentation(
        AugmentConfig(hflip=1, vflip=0, rotate90=0, brightness_contrast=0)
    )
    image, mask = _pair()
    out = pipeline(image=image, mask=mask)  # type: ignore[misc]
    assert np.array_equal(out["image"], image[:, ::-1])
    assert np.array_equal(out["mask"], mask[:, ::-1])


def test_no_augmentation_gives_none() -> None:
    off = AugmentConfig(hflip=0, vflip=0, rotate90=0, brightness_contrast=0)
    assert build_augmentation(off) is None


def test_resize_mask_is_nearest() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    resized = resize_mask(mask, (20, 7))
    assert resized.dtype == bool and resized.shape == (20, 7)
    assert resized[:10].all() and not resized[10:].any()
    assert resize_image(np.zeros((10, 10, 1), np.uint8), (4, 6)).shape == (4, 6, 1)


def test_dataset_crops_pads_by_reflection_and_normalises() -> None:
    # A bright image with a dark, labelled first row: reflection brings that row back at the
    # padded end only mirrored (row 20 mirrors row 18), never as zeros.
    bright = np.full((20, 24, 1), 255, np.uint8)
    bright[0] = 0
    labels = np.zeros((20, 24), bool)
    labels[0] = True
    small = ArraySample("a", bright, labels)
    large = ArraySample("b", np.zeros((64, 80, 1), np.uint8), np.zeros((64, 80), bool))
    dataset = SegmentationDataset([small, large], DataConfig(), channels=1, crop=32)
    image, mask = dataset[0]
    assert image.shape == (1, 32, 32) and mask.shape == (1, 32, 32)
    np.testing.assert_array_equal(
        image[0, :, 0].numpy(), np.pad(bright[:, 0, 0], (0, 12), "reflect") / 255
    )
    assert image[0, 20:, 24:].min() == 1.0  # the padded corner is background, as the image
    assert mask[0, 20:].sum() == 0 and mask[0, 0].all()
    assert dataset[1][0].shape == (1, 32, 32)
    whole = SegmentationDataset([small], DataConfig(), channels=3)
    assert whole[0][0].shape == (3, 20, 24)  # grey repeated to the model's channels
    assert not SegmentationDataset([small, large], DataConfig(), channels=1).same_size()


def test_quarter_turns_keep_non_square_shapes() -> None:
    wide = ArraySample("w", np.zeros((16, 40, 1), np.uint8), np.eye(16, 40, dtype=bool))
    dataset = SegmentationDataset([wide], DataConfig(), channels=1, rotate90=1.0)
    for epoch in range(8):
        image, mask = dataset[(epoch, 0)]
        assert image.shape == (1, 16, 40)  # turned by 180° only
        np.testing.assert_array_equal(mask[0].numpy(), np.rot90(np.eye(16, 40), 2))
    square = ArraySample("s", np.zeros((16, 16, 1), np.uint8), np.eye(16, dtype=bool)[::-1])
    turned = SegmentationDataset([square], DataConfig(), channels=1, rotate90=1.0)
    seen = {tuple(turned[(epoch, 0)][1][0].numpy().ravel()) for epoch in range(20)}
    assert len(seen) == 2  # the anti-diagonal turns into the diagonal and back


def test_items_depend_only_on_seed_epoch_and_index() -> None:
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 1), dtype=np.uint8)
    sample = ArraySample("a", image, image[:, :, 0] > 128)
    dataset = SegmentationDataset([sample], DataConfig(), channels=1, crop=16, seed=3)
    again = SegmentationDataset([sample], DataConfig(), channels=1, crop=16, seed=3)
    assert torch.equal(dataset[(2, 0)][0], again[(2, 0)][0])
    assert not torch.equal(dataset[(2, 0)][0], dataset[(3, 0)][0])


def test_foreground_fraction() -> None:
    a = ArraySample("a", np.zeros((2, 2, 1), np.uint8), np.array([[1, 0], [0, 0]], bool))
    b = ArraySample("b", np.zeros((2, 2, 1), np.uint8), np.array([[1, 1], [1, 0]], bool))
    assert foreground_fraction([a, b]) == pytest.approx(4 / 8)
