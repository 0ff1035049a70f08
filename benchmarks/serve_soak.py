"""Soak test of `seglab serve`: good and hostile uploads mixed for minutes, RSS over time.

Starts `python -m seglab serve` on a free loopback port (as `serve_load.py` does), then lets
`--clients` threads post uploads drawn at random from a mix of good images (256² nuclei, a
1500×1500 one, a 4×100000 strip) and hostile ones (a zlib TIFF stack of 100 pages of 4096², a
PNG declaring 20000², a 1×60000000 strip, a truncated PNG, text named .png, an empty file) for
`--minutes`.
Each kind has an expected answer (200, 413 or 400); anything else is an error. The server's
resident memory is sampled every `--sample` seconds. Bounded memory shows as an RSS that
levels off instead of growing with the number of requests.

Examples:
    python benchmarks/serve_soak.py --model tests/bundles/binary --minutes 10
    python benchmarks/serve_soak.py --model otsu --minutes 1 --clients 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tifffile
from PIL import Image
from rich import box
from rich.console import Console
from rich.table import Table

from seglab.data.synthetic import make_nuclei
from serve_load import free_port, memory_mb, start_server, wait_healthy

console = Console(width=None if sys.stdout.isatty() else 140)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def tiff_stack() -> bytes:
    """1.6 MB of zlib TIFF declaring 100 pages of 4096² (1.6 GB once decoded)."""
    page = np.zeros((4096, 4096), np.uint8)
    buffer = io.BytesIO()
    pages = (page for _ in range(100))
    tifffile.imwrite(buffer, pages, shape=(100, 4096, 4096), dtype=np.uint8, compression="zlib")
    return buffer.getvalue()


def uploads(channels: int) -> dict[str, tuple[bytes, int, float]]:
    """Each kind of upload: (bytes, expected status, share of the requests)."""
    nuclei = make_nuclei(1, size=1500, seed=0, variant="fluorescence")[0][0]
    if channels == 1:
        nuclei = np.ascontiguousarray(nuclei[..., 0])
    good = png(nuclei[:256, :256])
    return {
        "good 256²": (good, 200, 0.55),
        "good 1500²": (png(nuclei), 200, 0.05),
        "TIFF stack bomb": (tiff_stack(), 413, 0.05),
        "PNG bomb 20000²": (png(np.zeros((20000, 20000), np.uint8)), 413, 0.05),
        "4×100000 strip": (png(np.zeros((4, 100_000), np.uint8)), 200, 0.05),
        "1×60000000 strip": (png(np.zeros((1, 60_000_000), np.uint8)), 413, 0.05),
        "truncated PNG": (good[: len(good) // 2], 400, 0.05),
        "text as PNG": (b"\x89PNG\r\n\x1a\n" + b"not an image" * 10, 400, 0.05),
        "empty file": (b"", 400, 0.05),
    }


def client(
    url: str,
    kinds: dict[str, tuple[bytes, int, float]],
    deadline: float,
    seed: int,
    results: list[tuple[str, bool, float]],
) -> None:
    """Posts random kinds until `deadline`, appending (kind, as expected, latency ms)."""
    rng = random.Random(seed)
    names = list(kinds)
    weights = [kinds[name][2] for name in names]
    with httpx.Client() as session:
        while time.monotonic() < deadline:
            name = rng.choices(names, weights)[0]
            data, expected, _ = kinds[name]
            start = time.perf_counter()
            try:
                response = session.post(
                    url, files={"file": ("upload.png", data, "image/png")}, timeout=300
                )
                ok = response.status_code == expected
            except httpx.HTTPError:
                ok = False
            results.append((name, ok, (time.perf_counter() - start) * 1e3))


def soak(args: argparse.Namespace, kinds: dict[str, tuple[bytes, int, float]]) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        process = start_server(args.model, "auto", port, log)
        try:
            wait_healthy(url, process, args.startup_timeout)
            results: list[tuple[str, bool, float]] = []
            start = time.monotonic()
            deadline = start + args.minutes * 60
            threads = [
                threading.Thread(
                    target=client, args=(f"{url}/predict", kinds, deadline, i, results)
                )
                for i in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            samples = sample_rss(process.pid, start, deadline, args.sample, results)
            for thread in threads:
                thread.join()
            peak = memory_mb(process.pid, "VmHWM")
        finally:
            process.terminate()
            process.wait(timeout=30)
    return summarise(results, samples, peak)


def sample_rss(
    pid: int, start: float, deadline: float, every: float, results: list[Any]
) -> list[dict[str, float | int | None]]:
    samples = []
    while time.monotonic() < deadline:
        samples.append(
            {
                "seconds": round(time.monotonic() - start, 1),
                "requests": len(results),
                "rss_mb": memory_mb(pid, "VmRSS"),
            }
        )
        time.sleep(min(every, max(deadline - time.monotonic(), 0)))
    return samples


def summarise(
    results: list[tuple[str, bool, float]], samples: list[dict[str, Any]], peak: float | None
) -> dict[str, Any]:
    sent = Counter(name for name, _, _ in results)
    wrong = Counter(name for name, ok, _ in results if not ok)
    latency = {
        name: round(float(np.percentile([ms for n, _, ms in results if n == name], 99)), 1)
        for name in sent
    }
    rss = [s["rss_mb"] for s in samples if s["rss_mb"] is not None]
    return {
        "requests": len(results),
        "errors": sum(wrong.values()),
        "per_kind": {
            name: {"sent": sent[name], "errors": wrong[name], "p99_ms": latency[name]}
            for name in sent
        },
        "rss_mb": {
            "first": rss[0] if rss else None,
            "last": rss[-1] if rss else None,
            "max": max(rss) if rss else None,
            "peak_vmhwm": peak,
        },
        "samples": samples,
    }


def print_tables(result: dict[str, Any], args: argparse.Namespace) -> None:
    kinds = Table(
        title=f"seglab serve soak: {args.model}, {args.clients} clients, {args.minutes:g} min",
        box=box.SIMPLE,
    )
    for column in ("upload", "sent", "errors", "p99 ms"):
        kinds.add_column(column, justify="left" if column == "upload" else "right")
    for name, row in result["per_kind"].items():
        kinds.add_row(name, str(row["sent"]), str(row["errors"]), str(row["p99_ms"]))
    console.print(kinds)
    memory = Table(title="server RSS over time", box=box.SIMPLE)
    for column in ("seconds", "requests", "RSS MiB"):
        memory.add_column(column, justify="right")
    step = max(1, len(result["samples"]) // 12)
    for sample in result["samples"][::step]:
        memory.add_row(str(sample["seconds"]), str(sample["requests"]), str(sample["rss_mb"]))
    console.print(memory)
    console.print(f"RSS {result['rss_mb']}; {result['errors']} errors of {result['requests']}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="otsu", help="bundle folder or baseline (default: otsu)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3), help="image channels")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default: 4)")
    parser.add_argument("--minutes", type=float, default=10, help="soak length (default: 10)")
    parser.add_argument("--sample", type=float, default=10, help="RSS sample period, s")
    parser.add_argument("--startup-timeout", type=float, default=120, help="(default: 120)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/serve_soak.json"), help="JSON file"
    )
    args = parser.parse_args()
    if args.clients < 1 or args.minutes <= 0 or args.sample <= 0:
        parser.error("--clients must be >= 1, --minutes and --sample > 0")
    return args


def main() -> None:
    args = parse_args()
    console.print("making the uploads…")
    kinds = uploads(args.channels)
    console.print(f"soaking for {args.minutes:g} min…")
    result = soak(args, kinds)
    print_tables(result, args)
    result |= {
        "model": args.model,
        "clients": args.clients,
        "minutes": args.minutes,
        "cpu_count": os.cpu_count(),
        "uploads": {
            name: {"bytes": len(data), "expect": status}
            for name, (data, status, _) in kinds.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
