"""`seglab predict --workers N`: a folder spread over N processes, each with the model loaded
once and its share of the cores, so memory per worker stays constant however many images.

The workers die with the main process: on Linux each asks the kernel to kill it when its
parent dies (`PR_SET_PDEATHSIG`, so even a SIGKILL of the parent leaves no orphan), and a
SIGTERM of the main process or any error there kills them before it exits, rather than
waiting for them to finish the images left.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from seglab.inference.files import OutputOptions, PredictedFile, predict_one
from seglab.processes import die_with_parent

Result = tuple[PredictedFile, list[tuple[str, np.ndarray]]]

_predictor: Any = None  # the worker process's model, loaded once by `_start`


@dataclass(frozen=True)
class PredictorSpec:
    """How a worker builds its predictor: `load_predictor(model, "cpu", backend, precision)`,
    then the given attributes (threshold, tile, overlap, tta) set on it. Picklable, unlike a
    model."""

    model: str
    backend: str = "auto"
    precision: str = "auto"
    settings: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        from seglab.inference.loading import load_predictor

        predictor = load_predictor(self.model, "cpu", self.backend, self.precision)
        for name, value in self.settings.items():
            setattr(predictor, name, value)
        return predictor


def _start(load: Callable[[], Any], threads: int, parent: int) -> None:
    global _predictor
    die_with_parent(parent)
    # Each worker takes its share of the cores: N workers × all cores would oversubscribe.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # the ONNX Runtime backend runs without torch
        pass
    _predictor = load()


def _predict(job: tuple[Path, str, Path, OutputOptions]) -> Result:
    path, name, out, options = job
    return predict_one(_predictor, path, name, out, options)


def predict_in_processes(
    load: Callable[[], Any],
    items: list[tuple[Path, str]],
    out: Path,
    options: OutputOptions,
    workers: int,
    progress: bool,
) -> list[Result]:
    """Predict `(path, output name)` items on `workers` processes, results in input order.

    A SIGTERM (while no other handler is installed) or an error stops the workers at once and
    ends the main process with exit code 143 (or the error).
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(path, name, out, options) for path, name in items]
    # "spawn": a forked copy of a process that already ran torch threads can deadlock.
    context = multiprocessing.get_context("spawn")
    start = (load, threads, os.getpid())
    before = {child.pid for child in multiprocessing.active_children()}
    with _exit_on_sigterm():
        pool = ProcessPoolExecutor(workers, context, initializer=_start, initargs=start)
        try:
            results: Iterable[Result] = pool.map(_predict, jobs, chunksize=4)
            if progress:
                from rich.progress import track

                description = f"predicting ({workers} workers)"
                results = track(results, total=len(jobs), description=description)
            done = list(results)
        except BaseException:
            # Not `shutdown(wait=True)`: that would first predict every image left.
            for child in multiprocessing.active_children():
                if child.pid not in before:
                    child.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return done


@contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143) (so that the workers are stopped as
    the stack unwinds) where it would otherwise end the process on the spot; a handler that
    someone else installed (a server's) is left alone."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
