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
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EpochSampler", "item_rng"]


def item_rng(seed: int, key: int | tuple[int, int]) -> np.random.Generator:
    """The generator of one item: keyed by `(epoch, index)`, or by a plain index (epoch 0)."""
    epoch, index = key if isinstance(key, tuple) else (0, key)
    return np.random.default_rng([seed, epoch, index])


class EpochSampler(Sampler[Any]):
    """Yields `(epoch, index)` keys (or plain indices), in a new seeded order each epoch.

    Lightning calls `set_epoch` at the start of every training epoch (also after a resume), so
    the epoch travels inside the keys to the worker processes. Under DDP each process takes
    every `world_size`-th key of the same order (Lightning's own distributed sampler is off:
    wrapping this one would hide the epoch from it).

    Args:
        size: Number of items (`len(dataset)`).
        seed: Seed of the order.
        shuffle: Shuffle the order each epoch (else `0..size-1`).
        keyed: Yield `(epoch, index)` keys (else plain indices, for datasets without draws).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, keyed: bool = True) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.keyed = keyed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order and draws of `epoch` from the next iteration on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        rank, world = _process_group()
        if world > 1:  # equal shares: the first items again where the order runs short
            order = np.resize(order, len(self) * world)[rank::world]
        if not self.keyed:
            return iter([int(index) for index in order])
        return iter([(self.epoch, int(index)) for index in order])

    def __len__(self) -> int:
        _, world = _process_group()
        return -(-self.size // world)


def _process_group() -> tuple[int, int]:
    """This process's rank and the number of DDP processes (0, 1 outside DDP)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
