"""Load test of `seglab serve`: concurrent clients posting one image, throughput and latency.

For each backend in turn, starts `python -m seglab serve` in a subprocess on a free loopback
port, sends a few untimed warm-up requests, then lets `--clients` threads (one keep-alive httpx
connection each) post `--requests` images each, all within `--timeout` seconds. Reports
throughput, latency percentiles, errors, the server's own inference time (`X-Inference-Ms`) and
its peak memory (VmHWM from /proc). The clients share the machine's cores with the server, as
they would with a local client; on 2 cores that lowers the figures.

Examples:
    python benchmarks/serve_load.py --model otsu --requests 50
    python benchmarks/serve_load.py --model runs/nuclei/model --backends torch,onnx
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from rich import box
from rich.console import Console
from rich.table import Table

from seglab.data.synthetic import make_nuclei

# Rich assumes 80 columns when stdout is not a terminal (logs, pipes), too narrow for the table.
console = Console(width=None if sys.stdout.isatty() else 140)


def free_port() -> int:
    # The port is free when checked; another process could take it before the server binds it,
    # which on a test machine is unlikely and shows as a server that fails to start.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_mb(pid: int, field: str) -> float | None:
    """VmRSS (now) or VmHWM (peak) of a process in MiB, from /proc; None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)  # reported in kB
    except OSError:
        pass
    return None


def start_server(model: str, backend: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "seglab", "serve", "--model", model]
    command += ["--backend", backend, "--port", str(port)]
    with log.open("wb") as handle:  # a file, not a pipe: a full pipe would stall the server
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {timeout:.0f} s")


def client(
    url: str, upload: bytes, count: int, deadline: float, results: list[tuple[bool, float, float]]
) -> None:
    """Posts `count` times (until `deadline`), appending (ok, latency ms, inference ms)."""
    with httpx.Client() as session:
        for _ in range(count):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            start = time.perf_counter()
            try:
                response = session.post(
                    url, files={"file": ("nuclei.png", upload, "image/png")}, timeout=remaining
                )
                ok = response.status_code == 200
                inference = float(response.headers.get("x-inference-ms", "nan"))
            except httpx.HTTPError:
                ok, inference = False, float("nan")
            results.append((ok, (time.perf_counter() - start) * 1e3, inference))


def load(args: argparse.Namespace, backend: str, upload: bytes) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        process = start_server(args.model, backend, port, log)
        try:
            wait_healthy(url, process, args.startup_timeout)
            served_by = httpx.get(f"{url}/model", timeout=10).json()["backend"]
            predict = f"{url}/predict?format={args.format}"
            for _ in range(args.warmup):
                httpx.post(predict, files={"file": ("w.png", upload, "image/png")}, timeout=60)
            idle_mb = memory_mb(process.pid, "VmRSS")
            results: list[tuple[bool, float, float]] = []
            start = time.monotonic()
            deadline = start + args.timeout
            threads = [
                threading.Thread(
                    target=client, args=(predict, upload, args.requests, deadline, results)
                )
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.monotonic() - start
            peak_mb = memory_mb(process.pid, "VmHWM")
        except (RuntimeError, httpx.HTTPError) as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            return {"backend": backend, "error": f"{exc}\n{tail}".strip()}
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return summarise(backend, served_by, results, seconds, idle_mb, peak_mb, args)


def summarise(
    backend: str,
    served_by: str,
    results: list[tuple[bool, float, float]],
    seconds: float,
    idle_mb: float | None,
    peak_mb: float | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    latencies = np.array([latency for ok, latency, _ in results if ok])
    inference = np.array([ms for ok, _, ms in results if ok])
    ok = len(latencies)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if ok else (np.nan,) * 3
    return {
        "backend": backend,
        "served_by": served_by,
        "requests": args.clients * args.requests,
        "sent": len(results),
        "ok": ok,
        "errors": len(results) - ok,
        "stopped_by_timeout": len(results) < args.clients * args.requests,
        "seconds": round(seconds, 2),
        "throughput_rps": round(ok / seconds, 2) if seconds > 0 else None,
        "latency_ms": {
            "p50": round(float(p50), 1),
            "p95": round(float(p95), 1),
            "p99": round(float(p99), 1),
            "mean": round(float(latencies.mean()), 1) if ok else None,
        },
        "inference_ms_mean": round(float(inference.mean()), 2) if ok else None,
        "rss_idle_mb": idle_mb,
        "rss_peak_mb": peak_mb,
    }


def print_table(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    title = (
        f"seglab serve: {args.model}, {args.clients} clients × {args.requests} requests, "
        f"{args.size}×{args.size} PNG → {args.format}"
    )
    table = Table(title=title, box=box.SIMPLE)
    columns = ("backend", "served by", "ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms")
    for column in (*columns, "inference ms", "peak RSS MiB"):
        table.add_column(column, justify="left" if column.startswith(("b", "s")) else "right")
    for run in runs:
        if "error" in run:
            table.add_row(run["backend"], "[red]failed[/red]", *[""] * 8)
            continue
        latency = run["latency_ms"]
        table.add_row(
            run["backend"],
            run["served_by"],
            str(run["ok"]),
            str(run["errors"]),
            f"{run['throughput_rps']}",
            f"{latency['p50']}",
            f"{latency['p95']}",
            f"{latency['p99']}",
            f"{run['inference_ms_mean']}",
            f"{run['rss_peak_mb']}",
        )
    console.print(table)
    for run in runs:
        if "error" in run:
            console.print(f"[red]{run['backend']}: {run['error']}[/red]")
        elif run["stopped_by_timeout"]:
            console.print(f"{run['backend']}: stopped by --timeout after {run['sent']} requests")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="otsu", help="bundle folder or baseline (default: otsu)")
    parser.add_argument("--backends", default="auto", help="comma-separated: auto, torch, onnx")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument("--requests", type=int, default=200, help="per client (default: 200)")
    parser.add_argument("--size", type=int, default=256, help="image side (default: 256)")
    parser.add_argument("--format", default="png", choices=("png", "json", "overlay"))
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests (default: 3)")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds of load per backend (default: 300)"
    )
    parser.add_argument("--startup-timeout", type=float, default=120, help="(default: 120)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/serve_load.json"), help="JSON file"
    )
    args = parser.parse_args()
    for name in ("clients", "requests", "size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.timeout <= 0 or args.warmup < 0:
        parser.error("--timeout must be > 0 and --warmup >= 0")
    return args


def main() -> None:
    args = parse_args()
    image = make_nuclei(1, size=args.size, seed=0, variant="fluorescence")[0][0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    upload = buffer.getvalue()
    # Other processes competing for the cores skew the figures; the load average shows it.
    load_avg = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    runs = []
    for backend in [name.strip() for name in args.backends.split(",") if name.strip()]:
        if backend == "onnx" and not (Path(args.model) / "model.onnx").is_file():
            console.print(f"skipping onnx: {args.model} has no model.onnx (`seglab export` it)")
            continue
        console.print(f"{backend}: starting the server and sending requests…")
        runs.append(load(args, backend, upload))
    print_table(runs, args)
    result = {
        "model": args.model,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "image": f"{args.size}x{args.size} RGB PNG, {len(upload)} bytes",
        "format": args.format,
        "timeout_s": args.timeout,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg_1m": load_avg,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    if any("error" in run for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
