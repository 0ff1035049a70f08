"""Prediction over files with the post-processing beside the network: while the model
predicts one image, a thread makes the previous image's instances and writes its files.

NumPy, SciPy, scikit-image, OpenCV and the PNG encoder release the GIL for most of that work,
so it runs on cores the network leaves idle between and inside its layers; on a machine whose
cores the network keeps busy it costs what it costs in line, no more.
"""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

# Images predicted but not yet written: one in the thread and one waiting bounds the memory to
# two images' outputs, and the network never waits for a short post-processing.
MAX_PENDING = 2

Finished = TypeVar("Finished")


def predict_overlapped(
    items: Iterable[tuple[Path, str]],
    forward: Callable[[Path], tuple[Any, Any]],
    finish: Callable[[Path, str, Any, Any], Finished],
) -> list[Finished]:
    """`finish(path, name, *forward(path))` for each `(path, name)`, in order: `forward` (the
    network) in this thread, `finish` (instances, files) in another; the first error raised by
    either is raised here."""
    done: list[Finished] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-finish") as pool:
        pending: deque[Future[Finished]] = deque()
        try:
            for path, name in items:
                image, prediction = forward(path)
                pending.append(pool.submit(finish, path, name, image, prediction))
                while len(pending) > MAX_PENDING:
                    done.append(pending.popleft().result())
            done.extend(future.result() for future in pending)
        finally:
            for future in pending:
                future.cancel()
    return done


@contextlib.contextmanager
def core_for_finishing() -> Iterator[None]:
    """One core fewer for torch's CPU threads while it lasts, when torch is loaded and has
    more than one: the thread making instances gets that core.

    torch's threads wait for each other at every parallel region, so a thread that takes one
    of their cores slows every layer. With `--instances` on 2 cores (`benchmarks/
    instances_overhead.py`'s images) torch at 1 thread beside the finishing thread took 0.69 s
    for 50 images of 128² and 3.47 s for four of 1024², against 0.96 s and 3.71 s at 2.
    """
    torch = sys.modules.get("torch")
    if torch is None or torch.get_num_threads() < 2:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
