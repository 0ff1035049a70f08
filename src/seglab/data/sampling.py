"""Seeded sampling shared by the 2D and volume datasets: every random draw of an item depends
only on `(seed, epoch, index)`.

Worker processes hold copies of a dataset; a generator stored in the dataset would be copied
with it, so every worker would draw the same crops and augmentations. Keys `(epoch, index)`
from `EpochSampler` instead travel to the workers with each item, and the item's generator is
made from them: workers never repeat one another, and a run gives the same batches whatever
`num_workers` is.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "item_rng"]


def item_rng(seed: int, key: int | tuple[int, int]) -> np.random.Generator:
    """The generator of one item: keyed by `(epoch, index)`, or by a plain index (epoch 0)."""
    epoch, index = key if isinstance(key, tuple) else (0, key)
    return np.random.default_rng([seed, epoch, index])


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields `(epoch, index)` keys, in a new seeded order each epoch.

    Lightning calls `set_epoch` at the start of every training epoch (also after a resume), so
    the epoch travels inside the keys to the worker processes.

    Args:
        size: Number of items (`len(dataset)`).
        seed: Seed of the order.
        shuffle: Shuffle the order each epoch (else `0..size-1`).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order and draws of `epoch` from the next iteration on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        return iter([(self.epoch, int(index)) for index in order])

    def __len__(self) -> int:
        return self.size
