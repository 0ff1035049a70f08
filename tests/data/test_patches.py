"""Tests of seglab.data.patches: patch positions, foreground centring, padding, flips, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from seglab.data.patches import (
    PatchDataset,
    VolumeDataset,
    patch_start,
    volume_target,
)
from seglab.data.sampling import EpochSampler


def volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A (1, D, H, W) float32 volume of distinct values, so any crop can be located."""
    return np.random.default_rng(seed).random((1, *shape), dtype=np.float32)


def one_voxel_labels(shape: tuple[int, int, int], voxel: tuple[int, int, int]) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    labels[voxel] = 1
    return labels


@pytest.mark.parametrize(
    ("centre", "patch", "size", "start"),
    [
        (10, 8, 20, 6),  # 10 - 8 // 2 = 6, inside [0, 12]
        (3, 8, 20, 0),  # 3 - 4 = -1, moved to 0
        (19, 8, 20, 12),  # 19 - 4 = 15 > 20 - 8 = 12, moved to 12
        (2, 5, 5, 0),  # a patch as long as the axis starts at 0
        (4, 3, 9, 3),  # odd patch: 4 - 3 // 2 = 3
    ],
)
def test_patch_start(centre: int, patch: int, size: int, start: int) -> None:
    assert patch_start(centre, patch, size) == start


def test_foreground_share_centres_the_first_items_of_each_volume() -> None:
    # 8 patches per volume, share 0.33: floor(0.33 * 8 + 0.5) = floor(3.14) = 3 centred items.
    # The one foreground voxel (10, 10, 10) of a 20³ volume centres an 8³ patch at start
    # 10 - 8 // 2 = 6 on every axis, so it sits at (4, 4, 4) in the patch (no flips).
    labels = one_voxel_labels((20, 20, 20), (10, 10, 10))
    dataset = PatchDataset([volume((20, 20, 20))], [labels], (8, 8, 8), flip=0.0, seed=3)
    assert dataset.foreground_items == 3
    for index in range(3):
        _, target = dataset[index]
        assert target.shape == (1, 8, 8, 8)
        assert target[0, 4, 4, 4] == 1 and target.sum() == 1
    # Uniform patches of a volume with one voxel of foreground rarely hold it.
    uniform = [float(dataset[(epoch, i)][1].sum()) for epoch in range(4) for i in range(3, 8)]
    assert sum(uniform) < len(uniform)


def test_patch_is_the_volume_at_the_centred_position() -> None:
    image = volume((20, 20, 20))
    labels = one_voxel_labels((20, 20, 20), (3, 19, 10))
    dataset = PatchDataset([image], [labels], (8, 8, 8), foreground_share=1.0, flip=0.0)
    patch, _ = dataset[0]
    # Starts: 3 - 4 -> 0; 19 - 4 = 15 -> 12 (= 20 - 8); 10 - 4 = 6.
    np.testing.assert_array_equal(patch.numpy(), image[:, 0:8, 12:20, 6:14])


def test_item_depends_only_on_seed_epoch_and_index() -> None:
    labels = one_voxel_labels((12, 12, 12), (5, 6, 7))
    a = PatchDataset([volume((12, 12, 12))], [labels], (6, 6, 6), seed=1)
    b = PatchDataset([volume((12, 12, 12))], [labels], (6, 6, 6), seed=1)
    for key in [(0, 0), (0, 5), (3, 5)]:
        assert torch.equal(a[key][0], b[key][0])
    assert torch.equal(a[4][0], a[(0, 4)][0])  # a bare index is epoch 0
    # Epochs draw other patches; 20 keys of a 12³ volume cannot all coincide.
    assert any(not torch.equal(a[(0, i)][0], a[(1, i)][0]) for i in range(8))
    other_seed = PatchDataset([volume((12, 12, 12))], [labels], (6, 6, 6), seed=2)
    assert any(not torch.equal(a[(0, i)][0], other_seed[(0, i)][0]) for i in range(8))


def test_flip_probability_one_flips_all_three_axes() -> None:
    # Positions are drawn before flips, so both datasets crop the same box.
    image, labels = volume((10, 11, 12)), one_voxel_labels((10, 11, 12), (2, 3, 4))
    plain = PatchDataset([image], [labels], (6, 7, 8), flip=0.0, seed=5)
    flipped = PatchDataset([image], [labels], (6, 7, 8), flip=1.0, seed=5)
    for index in range(8):
        (x, y), (fx, fy) = plain[index], flipped[index]
        assert torch.equal(fx, torch.flip(x, (1, 2, 3)))
        assert torch.equal(fy, torch.flip(y, (1, 2, 3)))


def test_small_volumes_are_padded_at_the_far_end_by_reflection() -> None:
    image = volume((3, 4, 5))
    labels = np.ones((3, 4, 5), np.int32)
    dataset = PatchDataset([image], [labels], (6, 6, 6), flip=0.0, pad_label=7)
    # Reflection without repeating the edge: index 3 of an axis of 3 mirrors index 1, etc.
    reflected = np.pad(image, [(0, 0), (0, 3), (0, 2), (0, 1)], mode="reflect")
    assert reflected[0, 3, 0, 0] == image[0, 1, 0, 0] and reflected[0, 5, 0, 0] == image[0, 1, 0, 0]
    for index in range(len(dataset)):
        patch, target = dataset[index]
        assert patch.shape == (1, 6, 6, 6)
        # The only placement of a 6³ patch in the padded 6³ volume is the whole of it.
        np.testing.assert_array_equal(patch.numpy(), reflected)
        assert target[0, :3, :4, :5].sum() == 3 * 4 * 5  # labels 1 inside ...
        assert int((target == 0).sum()) == 0  # ... and the padding label 7 > 0 is foreground
    # Multi-class padding keeps its label (ignore_index in training), not background.
    classes = PatchDataset([image], [labels], (6, 6, 6), flip=0.0, multiclass=True, pad_label=7)
    _, target = classes[0]
    assert int((target == 7).sum()) == 6**3 - 3 * 4 * 5 and int((target == 1).sum()) == 60


def test_multiclass_targets_and_ignored_voxels() -> None:
    labels = np.full((10, 10, 10), 255, np.int32)  # all unlabelled ...
    labels[5, 5, 5] = 2  # ... but one voxel of class 2
    dataset = PatchDataset(
        [volume((10, 10, 10))],
        [labels],
        (4, 4, 4),
        foreground_share=1.0,
        flip=0.0,
        multiclass=True,
        ignore_index=255,
        pad_label=255,
    )
    _, target = dataset[0]
    assert target.dtype == torch.int64 and target.shape == (4, 4, 4)
    # Ignored voxels are never centres: the patch is centred on (5, 5, 5), start 5 - 2 = 3.
    assert target[2, 2, 2] == 2 and int((target == 2).sum()) == 1


def test_volume_without_foreground_falls_back_to_uniform_patches() -> None:
    dataset = PatchDataset([volume((9, 9, 9))], [np.zeros((9, 9, 9), np.int32)], (4, 4, 4))
    assert all(dataset[i][1].sum() == 0 for i in range(len(dataset)))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 12)] * 3),
    patch=st.tuples(*[st.integers(1, 8)] * 3),
    voxel_seed=st.integers(0, 2**16),
    epoch=st.integers(0, 5),
)
def test_centred_patches_always_hold_their_centre(
    shape: tuple[int, int, int], patch: tuple[int, int, int], voxel_seed: int, epoch: int
) -> None:
    rng = np.random.default_rng(voxel_seed)
    voxel = tuple(int(rng.integers(s)) for s in shape)
    dataset = PatchDataset(
        [volume(shape)], [one_voxel_labels(shape, voxel)], patch, 2, foreground_share=1.0
    )
    for index in range(2):
        image, target = dataset[(epoch, index)]
        assert image.shape == (1, *patch) and target.shape == (1, *patch)
        assert target.sum() == 1  # the only foreground voxel is inside, wherever it was


def test_index_out_of_range_and_bad_arguments() -> None:
    dataset = PatchDataset([volume((4, 4, 4))], [np.zeros((4, 4, 4))], (2, 2, 2), 3)
    assert len(dataset) == 3
    with pytest.raises(IndexError):
        dataset[3]
    with pytest.raises(ValueError, match="same size"):
        PatchDataset([volume((4, 4, 4))], [np.zeros((4, 4, 5))], (2, 2, 2))
    with pytest.raises(ValueError, match="patch"):
        PatchDataset([volume((4, 4, 4))], [np.zeros((4, 4, 4))], (2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="foreground_share"):
        PatchDataset([volume((4, 4, 4))], [np.zeros((4, 4, 4))], (2, 2, 2), foreground_share=2)


def test_sampler_orders_each_epoch_and_carries_it() -> None:
    sampler = EpochSampler(6, seed=0)
    first = list(sampler)
    assert len(sampler) == 6
    assert [epoch for epoch, _ in first] == [0] * 6
    assert sorted(index for _, index in first) == list(range(6))
    assert list(sampler) == first  # the same epoch, the same order
    sampler.set_epoch(3)
    third = list(sampler)
    assert {epoch for epoch, _ in third} == {3}
    assert [i for _, i in third] != [i for _, i in first]  # 1 chance in 720 to coincide
    assert [i for _, i in EpochSampler(6, shuffle=False)] == list(range(6))


def test_batches_are_the_same_with_worker_processes() -> None:
    labels = one_voxel_labels((12, 12, 12), (6, 6, 6))
    dataset = PatchDataset([volume((12, 12, 12)), volume((12, 12, 12), 1)], [labels] * 2, (4, 4, 4))

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochSampler(len(dataset), seed=0)
        sampler.set_epoch(2)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=workers)
        return [images for images, _ in loader]

    serial, parallel = batches(0), batches(2)
    assert [b.shape for b in serial] == [(4, 1, 4, 4, 4)] * 4
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_volume_dataset_and_targets() -> None:
    labels = np.array([[[0, 3], [1, 0]]], np.int32)  # (1, 2, 2)
    binary = volume_target(labels, multiclass=False)
    assert binary.dtype == torch.float32 and binary.tolist() == [[[[0, 1], [1, 0]]]]
    classes = volume_target(labels, multiclass=True)
    assert classes.dtype == torch.int64 and classes.tolist() == [[[0, 3], [1, 0]]]
    whole = VolumeDataset([volume((1, 2, 2))], [labels])
    image, target = whole[0]
    assert len(whole) == 1 and image.shape == (1, 1, 2, 2) and target.shape == (1, 1, 2, 2)
