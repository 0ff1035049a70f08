"""Training at the real data sets' scale: cache build, first step, peak memory, loader rate.

Synthetic data is written in the real layouts at the real data sets' counts and shape mix:

- cityscapes: 2,975 train + 500 val street scenes at 2048×1024 (`seglab.data.streets`, gtFine
  labelIds), written by two processes through `make_street` (drawn at a quarter of the side,
  enlarged, with noise) and `write_streets`' file names.
- dsb2018: stage1's 670 images in its size mix (counts below), fluorescence, bright-field and
  stained, in the dsb2018 layout (`<id>/images/<id>.png`, one `<id>/masks/<k>.png` per nucleus).
  The generator is this file's own (`seglab.data.synthetic` writes square images only): ellipses
  on a flat background with noise, nuclei per image proportional to its area.
- volumes (opt-in): pairs of 64×512×512 uint8 image and 0/1 label volumes (32 MiB a pair
  decoded) in the `volumes` layout (`train|val/images/vol_<n>.tif`, `labels/`), as many as
  make twice the machine's memory (MemTotal, so more than twice the memory available), one
  validation volume, the rest
  for training. They are written lazily (each pair drawn, written and freed in turn) as
  zlib-compressed ImageJ TIFF stacks, with image noise of 2 bits (0..3) so that the sources
  take ~5.6 MiB a pair: sources and the ~34 MB-a-pair cache must fit the disk, which is checked
  first (the benchmark refuses, saying how much it needs, when they do not).

`--scale` multiplies the counts (at least one image per split and per DSB2018 size). Each step
runs in a child process, so the benchmark itself holds no data; each child's output is logged
with the seconds since its launch, each Python child reports its own peak resident set
(`VmHWM` of /proc/self/status), the kernel reports the largest process of each child's tree
(`ru_maxrss` of `wait4`), and the parent polls the summed resident memory of the tree, killing
it beyond `--rss-cap` GiB so a run cannot exhaust the machine. For the 2D sets:

1. generation (skipped when `<root>/<set>/data` exists, so reruns with `--keep` measure the
   cached case);
2. the first-run cache build: `cache_split_data`, as `seglab train` calls it, then `cache_size`;
3. the step rate: a child builds what `seglab.training.run.train` builds (default config, the
   same model, loss, task and loaders, by the same functions) and fits a Lightning Trainer for
   `--steps` steps without validation, logging or checkpoints: seconds from its launch to the
   first training batch, steps/s (after the first step) and peak RSS;
4. loader throughput: the same training DataLoader with 0, 1 and 2 workers, batches/s after a
   warm-up, against the step rate of 3 (goal: >= 1.5×);
5. the real `python -m seglab train --no-track --no-progress` on the cached data, bounded by
   `--set train.max_steps=<--cli-steps>`, with no test evaluation: after the steps it predicts
   the val split to tune the threshold (by sliding window where images are large) and writes
   the bundle, as any run (a run that max_steps stops before its first epoch ends has no
   validation loss, and its bundle is its last checkpoint). Its wall time, the seconds to
   seglab's "training on <device> in precision <p>" log line (training start: split, cache
   opened, model and loaders built) and to the last write of `train_log.csv` or
   `checkpoints/last.ckpt` (end of the fit), and the peak RSS
   of its process tree. Cityscapes' 500 validation images at 2048×1024 make this step long on a
   CPU: the README's row for it is from a reduced `--scale`.

The volumes set goes through the real `seglab train --layout volumes --model unet3d` only
(`data.patch=[32,64,64]`, one patch per volume and epoch, `train.epochs=1`, the same
`train.max_steps` bound, no test split): a first run on an empty cache, which decodes each
volume whole (32 MiB, one at a time) into the cache (`cache s`: launch to the last entry
written), then, unless `--no-warm`, a second run on the warm cache (its training start is the
time to the first step on cached data). Validation and threshold tuning go by cubic sliding
window over the whole validation volume.

Timings are from a shared 2-core machine on which other test suites run; they are noisy.

Examples:
    python benchmarks/data_scale.py --scale 0.01
    python benchmarks/data_scale.py --sets dsb2018 --steps 30
    python benchmarks/data_scale.py --sets volumes --scale 0.02 --keep
    python benchmarks/data_scale.py --sets volumes --cli-steps 20 --out volumes.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SETS = ("cityscapes", "dsb2018", "volumes")
CITYSCAPES_COUNTS = {"train": 2975, "val": 500}
CITYSCAPES_SHAPE = (1024, 2048)
# DSB2018 stage1_train: images per (H, W); 670 in all.
DSB_SIZES = {
    (256, 256): 334,
    (256, 320): 112,
    (260, 347): 5,
    (360, 360): 91,
    (512, 640): 13,
    (520, 696): 92,
    (603, 1272): 6,
    (1024, 1024): 16,
    (1040, 1388): 1,
}
DSB_MODALITIES = {"fluorescence": 0.8, "stained": 0.15, "brightfield": 0.05}
PIXELS_PER_NUCLEUS = 3500  # ~44 nuclei per image on average, as in stage1 (29,461 masks)
VOLUME_SHAPE = (64, 512, 512)  # uint8 image + uint8 labels: 32 MiB a pair decoded
VOLUME_NOISE = 4  # image noise drawn in 0..3 (2 bits: zlib keeps ~1/3 of the image bytes)
VOLUME_VAL = 1  # validation volumes (a sliding window over each whole volume)
# Disk per pair: the compressed TIFF sources (measured ~5.6 MiB) and the cache entry (uint8
# image, bool labels, at most MAX_FOREGROUND_VOXELS int64 patch centres), with some headroom.
VOLUME_SOURCE_BYTES = 13 * 2**19
VOLUME_CACHE_BYTES = 32 * 2**20 + 100_000 * 8
DISK_MARGIN_BYTES = 5 * 2**30
VOLUME_PAIR_BYTES = 2 * math.prod(VOLUME_SHAPE)
LOADER_GOAL = 1.5  # issue: the loader delivers >= 1.5x the training step rate
RSS_GOAL_MIB = 3 * 1024
WARMUP_BATCHES = 3


# --- generation ----------------------------------------------------------------------------


def _street_job(job: tuple[str, int, int, str, int]) -> None:
    import cv2

    from seglab.data.cityscapes import IMAGE_TAG, LABEL_SUFFIX
    from seglab.data.io import write_png
    from seglab.data.streets import CITIES, make_street

    partial, index, seed, split, _ = job
    rng = np.random.default_rng([seed, index])
    # Drawn at a quarter of the side (drawing at 2048×1024 takes ~1.2 s a scene here) and
    # enlarged; camera-like noise makes the PNGs decode like photographs, not flat colours.
    height, width = CITYSCAPES_SHAPE
    small, small_ids = make_street(rng, height // 4, width // 4)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    noise = rng.normal(0.0, 6.0, size=np.shape(image)).astype(np.float32)
    image = (np.asarray(image, np.float32) + noise).clip(0, 255).astype(np.uint8)
    label_ids = cv2.resize(small_ids, (width, height), interpolation=cv2.INTER_NEAREST)
    city = CITIES[split][index % len(CITIES[split])]
    name = f"{city}_000000_{index:06d}"
    base = Path(partial)
    write_png(base / "leftImg8bit" / split / city / f"{name}{IMAGE_TAG}.png", image)
    write_png(base / "gtFine" / split / city / f"{name}{LABEL_SUFFIX}", label_ids)


def _nucleus_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """`(H, W)` int32 instance labels: ellipses, later ones over earlier ones."""
    height, width = shape
    labels = np.zeros(shape, np.int32)
    for k in range(1, max(3, height * width // PIXELS_PER_NUCLEUS) + 1):
        a, b = rng.uniform(4, 16, size=2)
        angle = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = int(max(a, b)) + 1
        y0, y1 = max(0, int(cy) - r), min(height, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(width, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1
        labels[y0:y1, x0:x1][inside] = k
    return labels


def _dsb_image(rng: np.random.Generator, labels: np.ndarray, modality: str) -> np.ndarray:
    count = int(labels.max()) + 1
    if modality == "fluorescence":  # bright nuclei on black, grey
        level = np.concatenate([[8.0], rng.uniform(60, 250, count - 1)])
        grey = level[labels] + rng.normal(0, 6, labels.shape)
        image = np.repeat(grey[..., None], 3, axis=2)
    elif modality == "brightfield":  # dark grey-brown nuclei on a light field
        level = np.concatenate([[205.0], rng.uniform(70, 150, count - 1)])
        grey = level[labels] + rng.normal(0, 8, labels.shape)
        image = grey[..., None] * np.array([1.0, 0.95, 0.85])
    else:  # H&E-like: purple nuclei on pink tissue
        nuclei = labels > 0
        image = np.where(nuclei[..., None], [[[110, 60, 150]]], [[[235, 170, 205]]]).astype(float)
        image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _dsb_job(job: tuple[str, int, int, str, int]) -> None:
    from seglab.data.io import write_png

    partial, index, seed, shape_text, _ = job
    height, width, modality = shape_text.split(",")
    rng = np.random.default_rng([seed, index])
    labels = _nucleus_field(rng, (int(height), int(width)))
    image = _dsb_image(rng, labels, modality)
    sample_id = hashlib.sha1(f"{seed}-{index}".encode()).hexdigest()
    folder = Path(partial) / sample_id
    write_png(folder / "images" / f"{sample_id}.png", image)
    present = np.unique(labels)
    for k in present[present > 0]:
        write_png(folder / "masks" / f"{k}.png", labels == k)


def _volume_job(job: tuple[str, int, int, str, int]) -> None:
    """A uint8 image and its 0/1 labels as zlib-compressed TIFF stacks (ImageJ, `ZYX`)."""
    import tifffile

    partial, index, seed, split, _ = job
    rng = np.random.default_rng([seed, index])
    depth, height, width = VOLUME_SHAPE
    labels = np.zeros(VOLUME_SHAPE, np.uint8)
    zz, yy, xx = np.ogrid[:depth, :height, :width]
    for _ in range(24):
        r = rng.uniform(5, 20)
        cz, cy, cx = rng.uniform(0, depth), rng.uniform(0, height), rng.uniform(0, width)
        z0, z1 = max(0, int(cz - r)), min(depth, int(cz + r) + 1)
        y0, y1 = max(0, int(cy - r)), min(height, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(width, int(cx + r) + 1)
        ball = (zz[z0:z1] - cz) ** 2 + (yy[:, y0:y1] - cy) ** 2 + (xx[..., x0:x1] - cx) ** 2
        labels[z0:z1, y0:y1, x0:x1][ball <= r * r] = 1
    # Noise of 2 bits (0..3) so that zlib keeps ~1/3 of the image bytes (0..15 keeps ~60 %,
    # 0..39 ~72 %): the sources stay far smaller than the decoded volumes, which the cache
    # holds uncompressed, and sources + cache fit the disk at twice the free memory.
    noise = rng.integers(0, VOLUME_NOISE, VOLUME_SHAPE, dtype=np.uint8)
    image = noise + labels * np.uint8(120) + np.uint8(20)
    base = Path(partial) / split
    for folder, array in (("images", image), ("labels", labels)):
        (base / folder).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(
            base / folder / f"vol_{index:05d}.tif",
            array,
            imagej=True,
            metadata={"axes": "ZYX"},
            compression="zlib",
            compressionargs={"level": 1},  # as small as level 6 for noise, 2-3x faster
        )


def scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def generation_jobs(name: str, scale: float, seed: int) -> tuple[str, list[Any], dict[str, Any]]:
    """The job function's name, its jobs (`(partial, index, seed, what, 0)`) and a summary."""
    jobs: list[Any] = []
    if name == "cityscapes":
        counts = {split: scaled(n, scale) for split, n in CITYSCAPES_COUNTS.items()}
        index = 0
        for split, count in counts.items():
            for _ in range(count):
                jobs.append(("", index, seed, split, 0))
                index += 1
        height, width = CITYSCAPES_SHAPE
        return "_street_job", jobs, {"counts": counts, "sizes": [f"{width}×{height}"]}
    if name == "dsb2018":
        rng = np.random.default_rng(seed)
        shapes = [s for s, n in DSB_SIZES.items() for _ in range(scaled(n, scale))]
        modalities = rng.choice(list(DSB_MODALITIES), len(shapes), p=list(DSB_MODALITIES.values()))
        for index, ((h, w), modality) in enumerate(zip(shapes, modalities, strict=True)):
            jobs.append(("", index, seed, f"{h},{w},{modality}", 0))
        mix = {m: int(np.sum(modalities == m)) for m in DSB_MODALITIES}
        return (
            "_dsb_job",
            jobs,
            {
                "counts": {"all": len(shapes)},
                "sizes": [f"{w}×{h}" for h, w in DSB_SIZES],
                "modalities": mix,
            },
        )
    # Twice the whole memory (MemTotal), hence more than twice the free memory whatever else
    # runs, and the same count for the disk check and the generation.
    available, memory = _meminfo("MemAvailable"), _meminfo("MemTotal")
    total = max(VOLUME_VAL + 1, math.ceil(2 * memory * scale / VOLUME_PAIR_BYTES))
    splits = ["val"] * VOLUME_VAL + ["train"] * (total - VOLUME_VAL)
    jobs = [("", index, seed, split, 0) for index, split in enumerate(splits)]
    depth, height, width = VOLUME_SHAPE
    return (
        "_volume_job",
        jobs,
        {
            "counts": {"train": total - VOLUME_VAL, "val": VOLUME_VAL},
            "sizes": [f"{depth}×{height}×{width}"],
            "format": f"zlib TIFF, uint8, noise 0..{VOLUME_NOISE - 1}",
            "mem_available_gib": round(available / 2**30, 2),
            "mem_total_gib": round(memory / 2**30, 2),
            "target_gib": round(2 * memory * scale / 2**30, 2),
            "decoded_gib": round(total * VOLUME_PAIR_BYTES / 2**30, 2),
        },
    )


def generate(name: str, data: Path, scale: float, seed: int, jobs_count: int) -> dict[str, Any]:
    """Write the set into `data` (via `<data>.partial`, renamed when complete)."""
    function, jobs, summary = generation_jobs(name, scale, seed)
    partial = data.with_name(data.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    jobs = [(str(partial), *job[1:]) for job in jobs]
    with Pool(jobs_count) as pool:
        for _ in pool.imap_unordered(globals()[function], jobs, chunksize=1):
            pass
    partial.rename(data)
    return summary


# --- children ------------------------------------------------------------------------------


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _config(spec: dict[str, Any], workers: int | None = None) -> Any:
    from seglab.config import load_config
    from seglab.training.run import resolve_layout

    overrides = [f"data.root={spec['data']}", f"data.cache_dir={spec['cache']}"]
    if workers is not None:
        overrides.append(f"data.num_workers={workers}")
    return resolve_layout(load_config(None, overrides))


def child_cache(spec: dict[str, Any]) -> dict[str, Any]:
    from seglab.data.cache import cache_size
    from seglab.data.splits import cache_split_data

    config = _config(spec)
    started = time.perf_counter()
    split = cache_split_data(
        config.data, config.seed, Path(spec["cache"]), config.data.target == "boundary"
    )
    seconds = time.perf_counter() - started
    entries, total = cache_size(Path(spec["cache"]))
    return {
        "seconds": seconds,
        "entries": entries,
        "bytes": total,
        "layout": split.layout,
        "samples": {name: len(s) for name, s in split.samples.items()},
    }


def _training_parts(config: Any) -> dict[str, Any]:
    """What `seglab.training.run.train` builds before `trainer.fit`, by the same functions."""
    import torch

    from seglab.data.splits import cache_split_data
    from seglab.models import create_model
    from seglab.objectives.losses import ChannelwiseLoss
    from seglab.training.inputs import build_loss, make_loaders, resolve_views
    from seglab.training.kinds.images import output_names
    from seglab.training.tasks import MulticlassSegmentationTask, SegmentationTask

    borders = config.data.target == "boundary"
    split = cache_split_data(config.data, config.seed, Path(str(config.data.cache_dir)), borders)
    train = split.samples["train"]
    channels = max(s.channels for s in train)
    mapping = split.mapping
    views = resolve_views(config)
    model_kwargs = {
        "in_channels": channels * len(views),
        "num_classes": len(output_names(config, mapping)),
        **config.model.params,
    }
    model = create_model(config.model.name, **model_kwargs)
    loss = build_loss(config, train, mapping)
    if borders:
        loss = ChannelwiseLoss(loss)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    settings = config.train
    common = (settings.lr, settings.weight_decay, settings.scheduler, settings.channels_last)
    task: SegmentationTask
    if mapping is not None:
        task = MulticlassSegmentationTask(
            model, loss, mapping.num_classes, mapping.ignore_index, *common
        )
    else:
        task = SegmentationTask(model, loss, *common)
    ignore_index = mapping.ignore_index if mapping is not None else None
    val = split.samples["val"]
    train_loader, _ = make_loaders(config, train, val, channels, views, ignore_index)
    return {"task": task, "loader": train_loader, "model_kwargs": model_kwargs}


def child_train(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import pytorch_lightning as pl

    from seglab.precision import resolve_train_precision
    from seglab.training.inputs import resolve_crop
    from seglab.training.trainer import loader_workers

    config = _config(spec)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    parts = _training_parts(config)
    starts: list[float] = []
    ends: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            starts.append(time.time())

        def on_train_batch_end(self, *args: Any) -> None:
            ends.append(time.time())

    precision = resolve_train_precision("auto", "cpu")
    trainer = pl.Trainer(
        max_steps=spec["steps"],
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        precision=precision,  # type: ignore[arg-type]
        deterministic=config.train.deterministic,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        trainer.fit(parts["task"], parts["loader"])
    steps = len(ends)
    dataset = parts["loader"].dataset
    return {
        "first_step_s": starts[0] - spec["launched"],
        "steps": steps,
        "steps_per_s": (steps - 1) / (ends[-1] - ends[0]) if steps > 1 else float("nan"),
        "precision": precision,
        "batch_size": parts["loader"].batch_size,
        "crop": resolve_crop(config.data.crop, [tuple(s.shape) for s in dataset.samples]),
        "num_workers": loader_workers(config),
        "model": {"name": config.model.name, **parts["model_kwargs"]},
    }


def child_loader(spec: dict[str, Any]) -> dict[str, Any]:
    rates = {}
    for workers in spec["workers"]:
        loader = _training_parts(_config(spec, workers))["loader"]
        epoch, done, started = 0, 0, 0.0
        while done < WARMUP_BATCHES + spec["batches"]:
            loader.sampler.set_epoch(epoch)
            for _ in loader:
                done += 1
                if done == WARMUP_BATCHES:
                    started = time.perf_counter()
                if done == WARMUP_BATCHES + spec["batches"]:
                    break
            epoch += 1
        rates[str(workers)] = spec["batches"] / (time.perf_counter() - started)
        del loader  # its persistent workers exit before the next count's start
    return {"batches_per_s": rates}


def child_generate(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    summary = generate(spec["set"], Path(spec["data"]), spec["scale"], spec["seed"], spec["jobs"])
    return {"seconds": time.perf_counter() - started, **summary}


CHILDREN = {
    "generate": child_generate,
    "cache": child_cache,
    "train": child_train,
    "loader": child_loader,
}


def run_child(mode: str, spec: dict[str, Any], result_file: Path) -> None:
    result = CHILDREN[mode](spec)
    result["peak_rss_mib"] = _vm_hwm_mib()
    result_file.write_text(json.dumps(result))


# --- the parent ----------------------------------------------------------------------------


def _meminfo(key: str) -> int:
    """Bytes of a /proc/meminfo entry (MemAvailable, MemTotal)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/meminfo")


def _tree_rss_mib(root: int) -> float:
    """Resident memory of `root` and its descendants (DataLoader workers, pool processes)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(rss.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


def supervise(
    command: list[str], cap_mib: float, log: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `command` in its own session, polling its tree's memory; killed beyond `cap_mib`.

    Its output goes to `log`, each line prefixed with the seconds since the launch, and
    `lines` returns the first time each line was seen (for milestones such as a log message).
    `max_process_rss_mib` is the largest resident set of any one process of the tree, from the
    kernel (`ru_maxrss` of `wait4`); `tree_peak_rss_mib` the largest sum polled every 0.2 s.
    """
    launched = time.time()
    started = time.perf_counter()
    seen: dict[str, float] = {}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        text=True,
        errors="replace",
    )

    def copy() -> None:
        assert process.stdout is not None
        with log.open("w") as out:
            for line in process.stdout:
                at = time.perf_counter() - started
                seen.setdefault(line.strip(), at)
                out.write(f"{at:9.2f} {line}")
                out.flush()

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    peak, peak_at, killed = 0.0, 0.0, False
    timeline: list[tuple[float, float]] = []  # (s, tree MiB) every ~2 s, to place the peak
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        rss = _tree_rss_mib(process.pid)
        at = time.perf_counter() - started
        if rss > peak:
            peak, peak_at = rss, at
        if not timeline or at - timeline[-1][0] >= 2:
            timeline.append((round(at, 1), round(rss)))
        if peak > cap_mib and not killed:
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=10)
    return {
        "code": process.returncode,
        "killed": killed,
        "tree_peak_rss_mib": peak,
        "tree_peak_at_s": peak_at,
        "max_process_rss_mib": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "launched": launched,
        "lines": seen,
        "timeline": timeline,
    }


def child(mode: str, spec: dict[str, Any], work: Path, cap_mib: float) -> dict[str, Any]:
    result_file = work / f"{mode}.json"
    result_file.unlink(missing_ok=True)
    spec = {**spec, "launched": time.time()}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(spec)]
    command += ["--child-result", str(result_file)]
    status = supervise(command, cap_mib, work / f"{mode}.log")
    del status["lines"], status["launched"], status["timeline"]
    if status["killed"] or status["code"] != 0:
        tail = (work / f"{mode}.log").read_text()[-3000:]
        reason = f"killed at {status['tree_peak_rss_mib']:.0f} MiB" if status["killed"] else ""
        raise SystemExit(f"{mode} child failed {reason} (code {status['code']}):\n{tail}")
    return {**json.loads(result_file.read_text()), **status}


def _src_env() -> dict[str, str]:
    """PYTHONPATH for the `python -m seglab` children: the seglab this process imports."""
    import seglab

    src = str(Path(seglab.__file__).resolve().parent.parent)
    paths = [src, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def run_train_cli(
    name: str, root: Path, run: str, args: argparse.Namespace, cap: float
) -> dict[str, Any]:
    """The real `python -m seglab train`, bounded by `train.max_steps`, no test evaluation.

    Milestones, in seconds from the launch: `training_start_s`, when seglab logs "training on
    <device> in precision <p>" (the data split and cached, the model and loaders built, just
    before `trainer.fit`); `fit_end_s`, when `train_log.csv` or `checkpoints/last.ckpt` was last
    written (the steps and Lightning's end-of-epoch validations done); the rest of the wall time
    is tuning the threshold on val and writing the bundle. For the volumes set `cache_build_s`
    is the time from the launch to the last cache entry written (each entry is renamed into
    place when complete).
    """
    data, cache, run_dir = root / "data", root / "cache", root / run
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [sys.executable, "-m", "seglab", "train", "--data", str(data), "--out", str(run_dir)]
    command += ["--no-track", "--no-progress"]
    overrides = [
        f"train.max_steps={args.cli_steps}",
        "train.evaluate_test=false",
        f"data.cache_dir={cache}",
    ]
    if name == "volumes":
        command += ["--layout", "volumes", "--model", "unet3d"]
        overrides += ["train.epochs=1", "data.patches_per_volume=1", "data.patch=[32,64,64]"]
    for override in overrides:
        command += ["--set", override]
    entries_before = len(list(cache.glob("*/*/sample.json"))) if cache.is_dir() else 0
    status = supervise(command, cap, root / f"{run}.log", _src_env())
    lines = status.pop("lines")
    launched = status.pop("launched")
    timeline = status.pop("timeline")
    result: dict[str, Any] = {"command": " ".join(command), "run": run, **status}
    result["steps"] = args.cli_steps
    result["cache_entries_before"] = entries_before
    result["training_start_s"] = next(
        (
            at
            for line, at in lines.items()
            if line.startswith("training on ") and " in precision " in line
        ),
        None,
    )
    # The last epoch's end (train_log.csv, also written for an epoch that max_steps cut short)
    # or the last checkpoint, whichever is later.
    ends = [
        f.stat().st_mtime
        for f in (run_dir / "train_log.csv", run_dir / "checkpoints" / "last.ckpt")
        if f.is_file()
    ]
    result["fit_end_s"] = max(ends) - launched if ends else None
    epochs_log = run_dir / "train_log.csv"
    if epochs_log.is_file():  # epochs begun (each validated, unless max_steps cut it short)
        result["epochs"] = len(epochs_log.read_text().splitlines()) - 1
    if name == "volumes" and entries_before == 0 and cache.is_dir():
        written = [f.stat().st_mtime for f in cache.glob("*/*/sample.json")]
        result["cache_build_s"] = max(written) - launched if written else None
        result["cache_entries"] = len(written)
    result["rss_timeline"] = timeline
    log_text = (root / f"{run}.log").read_text()
    if status["code"] != 0:
        result["log_tail"] = log_text[-3000:]
    else:
        result["log_tail"] = log_text[-1500:]
    return result


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    root = args.root / name
    data, cache = root / "data", root / "cache"
    root.mkdir(parents=True, exist_ok=True)
    cap = args.rss_cap * 1024
    spec = {"set": name, "data": str(data), "cache": str(cache), "scale": args.scale}
    spec |= {"seed": 0, "jobs": args.jobs, "steps": args.steps, "batches": args.loader_batches}
    row: dict[str, Any] = {"set": name, "scale": args.scale}
    if name == "volumes":
        row["disk"] = check_volume_disk(root, args.scale)
        print(f"[{name}] disk: {row['disk']}", flush=True)
    if data.is_dir():
        row["generation"] = {"skipped": True, **generation_jobs(name, args.scale, 0)[2]}
        if name == "volumes":  # what is there, not what the free memory now asks for
            row["generation"]["counts"] = {
                split: len(list((data / split / "images").glob("*.tif")))
                for split in ("train", "val")
            }
    else:
        row["generation"] = child("generate", spec, root, cap)
    print(f"[{name}] generated: {row['generation']}", flush=True)
    if name == "volumes":
        row["cache_was_present"] = cache.is_dir()
        row["train_cli"] = []
        for run in ("run_cold", "run_warm"):
            if run == "run_warm" and not args.warm:
                continue
            row["train_cli"].append(run_train_cli(name, root, run, args, cap))
            print(f"[{name}] seglab train ({run}): {_brief(row['train_cli'][-1])}", flush=True)
            if row["train_cli"][-1]["code"] != 0:
                break
    else:
        row["cache_was_present"] = cache.is_dir()
        row["cache"] = child("cache", spec, root, cap)
        print(f"[{name}] cache: {row['cache']}", flush=True)
        row["train"] = child("train", spec, root, cap)
        print(f"[{name}] train: {row['train']}", flush=True)
        row["loader"] = child("loader", {**spec, "workers": [0, 1, 2]}, root, cap)
        print(f"[{name}] loader: {row['loader']}", flush=True)
        step_rate = row["train"]["steps_per_s"]
        ratios = {w: r / step_rate for w, r in row["loader"]["batches_per_s"].items()}
        default = str(row["train"]["num_workers"])
        row["ratio"] = ratios
        row["loader_meets_goal"] = ratios.get(default, float("nan")) >= LOADER_GOAL
        row["train_cli"] = []
        if args.cli_steps:
            row["train_cli"].append(run_train_cli(name, root, "run_warm", args, cap))
            print(f"[{name}] seglab train: {_brief(row['train_cli'][-1])}", flush=True)
    peaks = [row[k]["peak_rss_mib"] for k in ("cache", "train") if k in row]
    peaks += [run["tree_peak_rss_mib"] for run in row["train_cli"]]
    row["train_cli_ok"] = all(run["code"] == 0 for run in row["train_cli"])
    row["rss_meets_goal"] = bool(peaks) and max(peaks) < RSS_GOAL_MIB
    row["disk_gb"] = {"data": _disk_bytes(data) / 1e9, "cache": _disk_bytes(cache) / 1e9}
    if not args.keep and row["train_cli_ok"]:
        shutil.rmtree(root, ignore_errors=True)
    elif not args.keep:  # a rerun reuses the data and cache: delete them by hand when done
        print(f"[{name}] a seglab train run failed: {root} kept", flush=True)
    return row


def check_volume_disk(root: Path, scale: float) -> dict[str, float]:
    """Refuse (SystemExit) unless the volumes' sources and cache fit on `root`'s disk."""
    data, cache = root / "data", root / "cache"
    pairs = len(generation_jobs("volumes", scale, 0)[1])
    have_cache = len(list(cache.glob("*/*/sample.json"))) if cache.is_dir() else 0
    sources = 0 if data.is_dir() else pairs * VOLUME_SOURCE_BYTES
    need = sources + max(0, pairs - have_cache) * VOLUME_CACHE_BYTES + DISK_MARGIN_BYTES
    free = shutil.disk_usage(root).free
    disk = {"pairs": pairs, "need_gb": need / 1e9, "free_gb": free / 1e9}
    if free < need:
        raise SystemExit(
            f"volumes: {pairs} volume pairs need ~{need / 1e9:.1f} GB on {root} "
            f"({sources / 1e9:.1f} GB of compressed TIFF sources, "
            f"{pairs * VOLUME_CACHE_BYTES / 1e9:.1f} GB of cache, "
            f"{DISK_MARGIN_BYTES / 1e9:.1f} GB margin) but only {free / 1e9:.1f} GB are free: "
            "free some disk, pass --root on a larger disk, or lower --scale"
        )
    return disk


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    """A run's figures without its command and log."""
    return {k: v for k, v in run.items() if k not in ("command", "log_tail", "rss_timeline")}


def _disk_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"seglab at data scale (scale {result['scale']}, {result['steps']} steps)")
    columns = ["set", "images", "sizes", "gen s", "cache s", "cache GB", "first step s"]
    columns += ["steps/s", "loader b/s 0/1/2 w", "ratio 0/1/2 w", "≥1.5×", "peak RSS MiB"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("set", "sizes") else "right")
    runs = Table(title=f"`seglab train` (train.max_steps={result['cli_steps']}, no test)")
    columns = ["set", "images", "run", "cache s", "training start s", "fit end s", "wall s"]
    columns += ["tree peak RSS MiB", "max process RSS MiB", "exit"]
    for column in columns:
        runs.add_column(column, justify="left" if column in ("set", "run") else "right")
    for row in result["sets"]:
        generation = row["generation"]
        images = "+".join(str(n) for n in generation["counts"].values())
        for run in row["train_cli"]:
            state = "killed" if run["killed"] else str(run["code"])
            runs.add_row(
                row["set"],
                images,
                run["run"],
                _fmt(run.get("cache_build_s")),
                _fmt(run["training_start_s"]),
                _fmt(run["fit_end_s"]),
                _fmt(run["wall_s"]),
                _fmt(run["tree_peak_rss_mib"], ".0f"),
                _fmt(run["max_process_rss_mib"], ".0f"),
                state,
            )
        if row["set"] == "volumes":
            continue
        sizes = (
            generation["sizes"][0]
            if len(generation["sizes"]) == 1
            else (f"{len(generation['sizes'])} sizes")
        )
        gen_s = "cached" if generation.get("skipped") else _fmt(generation["seconds"])
        loader = row["loader"]["batches_per_s"]
        table.add_row(
            row["set"],
            images,
            sizes,
            gen_s,
            _fmt(row["cache"]["seconds"]) + (" (warm)" if row["cache_was_present"] else ""),
            _fmt(row["cache"]["bytes"] / 1e9, ".2f"),
            _fmt(row["train"]["first_step_s"]),
            _fmt(row["train"]["steps_per_s"], ".2f"),
            "/".join(_fmt(loader[w]) for w in ("0", "1", "2")),
            "/".join(_fmt(row["ratio"][w]) for w in ("0", "1", "2")),
            "yes" if row["loader_meets_goal"] else "NO",
            f"{row['cache']['peak_rss_mib']:.0f}/{row['train']['peak_rss_mib']:.0f}",
        )
    if table.row_count:
        console.print(table)
        workers = next((r["train"]["num_workers"] for r in result["sets"] if "train" in r), "—")
        print(
            "peak RSS: cache build / training process (VmHWM); ratio: loader batches/s over "
            f"training steps/s at 0/1/2 workers, ≥1.5× judged at the default ({workers} "
            "workers on a CPU)"
        )
    if runs.row_count:
        console.print(runs)
        print(
            "seconds from the launch: cache s (volumes, first run) to the last cache entry, "
            "training start to seglab's 'training on <device> in precision <p>' log line, fit "
            "end to the last write of train_log.csv or checkpoints/last.ckpt; the rest of the "
            "wall time tunes the threshold and writes the bundle. Tree RSS: all processes "
            "summed, polled every 0.2 s."
        )
    for row in result["sets"]:
        print(
            f"{row['set']}: data {row['disk_gb']['data']:.2f} GB, cache "
            f"{row['disk_gb']['cache']:.2f} GB on disk; peak RSS < 3 GiB: "
            f"{'yes' if row['rss_meets_goal'] else 'NO'}"
            + ("" if row["train_cli_ok"] else "; a `seglab train` run FAILED (see its log_tail)")
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sets", default="cityscapes,dsb2018", help="comma-separated: " + ", ".join(SETS)
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real counts")
    parser.add_argument(
        "--root", type=Path, default=Path("/tmp/seglab-data-scale"), help="data and cache"
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="training steps of the timed 2D child (20)"
    )
    parser.add_argument(
        "--cli-steps",
        type=int,
        default=20,
        help="train.max_steps of the real `seglab train` runs (20); 0 skips them for 2D sets",
    )
    parser.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="volumes: skip the second `seglab train` on the warm cache",
    )
    parser.add_argument("--loader-batches", type=int, default=20, help="timed batches (20)")
    parser.add_argument("--jobs", type=int, default=2, help="generating processes (2)")
    parser.add_argument(
        "--rss-cap", type=float, default=8.0, help="GiB at which a child is killed (8)"
    )
    parser.add_argument("--keep", action="store_true", help="keep data and cache afterwards")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / "data_scale.json",
        help="JSON result file (benchmarks/results/data_scale.json)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        args.spec = json.loads(rest[0])
        return args
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not args.sets or not set(args.sets) <= set(SETS):
        parser.error(f"--sets takes {', '.join(SETS)}")
    if args.scale <= 0 or args.steps < 2 or args.loader_batches < 1 or args.cli_steps < 0:
        parser.error("--scale must be > 0, --steps >= 2, --loader-batches >= 1, --cli-steps >= 0")
    if args.cli_steps == 0 and "volumes" in args.sets:
        parser.error("the volumes set is measured by `seglab train` only: --cli-steps >= 1")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args.child, args.spec, args.child_result)
        return
    started = time.perf_counter()
    load_start = os.getloadavg()
    rows = [measure(name, args) for name in args.sets]
    result = {
        "scale": args.scale,
        "steps": args.steps,
        "cli_steps": args.cli_steps,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "loader_batches": args.loader_batches,
        "cpu_count": os.cpu_count(),
        "goals": {"loader_ratio": LOADER_GOAL, "peak_rss_mib": RSS_GOAL_MIB},
        "wall_s": time.perf_counter() - started,
        "sets": rows,
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
