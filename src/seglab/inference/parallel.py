"""`seglab predict --workers N`: a folder spread over N processes, each with the model loaded
once and its share of the cores, so memory per worker stays constant however many images."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seglab.inference.files import OutputOptions, PredictedFile, predict_one

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


def _start(load: Callable[[], Any], threads: int) -> None:
    global _predictor
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
    """Predict `(path, output name)` items on `workers` processes, results in input order."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(path, name, out, options) for path, name in items]
    # "spawn": a forked copy of a process that already ran torch threads can deadlock.
    context = multiprocessing.get_context("spawn")
    start = (load, threads)
    with ProcessPoolExecutor(workers, context, initializer=_start, initargs=start) as pool:
        results: Iterable[Result] = pool.map(_predict, jobs, chunksize=4)
        if progress:
            from rich.progress import track

            results = track(results, total=len(jobs), description=f"predicting ({workers} workers)")
        return list(results)
