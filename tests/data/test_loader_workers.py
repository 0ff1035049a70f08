"""Loader worker processes: every draw is keyed by (seed, epoch, index), so workers never repeat
one another and a run gives the same batches with 0, 1 or 2 workers."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from seglab.config import Config, DataConfig
from seglab.data.dataset import ArraySample, SegmentationDataset
from seglab.data.sampling import EpochSampler
from seglab.training.trainer import loader_workers


def crops(workers: int, epoch: int) -> list[torch.Tensor]:
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 1), dtype=np.uint8)
    # Sixteen items of one image: only the random crop tells them apart.
    samples = [ArraySample(f"s{i}", image, image[:, :, 0] > 100) for i in range(16)]
    dataset = SegmentationDataset(samples, DataConfig(), channels=1, crop=32, seed=5)
    sampler = EpochSampler(len(dataset), seed=5)
    sampler.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers)
    return [images[0] for images, _ in loader]


def test_two_workers_never_yield_the_same_crop_and_match_one_process() -> None:
    parallel = crops(2, epoch=1)
    assert len({tuple(c.flatten().tolist()) for c in parallel}) == len(parallel) == 16
    serial = crops(0, epoch=1)
    assert all(torch.equal(a, b) for a, b in zip(parallel, serial))
    later = crops(2, epoch=2)
    assert not all(torch.equal(a, b) for a, b in zip(parallel, later))


def test_auto_workers_on_a_cpu_are_none() -> None:
    config = Config.model_validate({"train": {"accelerator": "cpu"}})
    assert config.data.num_workers == "auto"
    assert loader_workers(config) == 0
    assert loader_workers(Config.model_validate({"data": {"num_workers": 3}})) == 3
