"""This CPU's fp32 and bf16 peak: nominal (cores × clock × FLOP/cycle from the flags) and
measured (a large matrix product through torch, the rate a convolution could at best reach).

Example:
    .venv/bin/python benchmarks/cpu_peak.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch


def _cpuinfo_blocks() -> list[dict[str, str]]:
    path = Path("/proc/cpuinfo")
    text = path.read_text() if path.is_file() else ""
    return [
        {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in block)}
        for block in (b.splitlines() for b in text.split("\n\n"))
        if block
    ]


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def flop_per_cycle(flags: set[str], vendor: str, family: int) -> tuple[int, str]:
    """fp32 FLOP per cycle per core from the CPU flags (two FMA units, an FMA being 2 FLOP).

    AVX-512 with two 512-bit FMA units gives 64; AMD Zen 4 (family 25 with AVX-512) runs
    AVX-512 on 256-bit units, so it gives 32 like AVX2 + FMA; AVX without FMA 16; SSE 8. Intel
    parts with a single 512-bit FMA unit (some Xeon Silver/Bronze) give 32 too, which the flags
    cannot tell: pass --flop-per-cycle there.
    """
    if "avx512f" in flags and vendor == "AuthenticAMD" and family == 25:
        return 32, "AVX-512 on Zen 4's 256-bit units: 2 FMA x 8 lanes x 2"
    if "avx512f" in flags:
        return 64, "AVX-512: 2 FMA x 16 lanes x 2"
    if {"avx2", "fma"} <= flags:
        return 32, "AVX2 + FMA: 2 FMA x 8 lanes x 2"
    if "avx" in flags:
        return 16, "AVX: 8-lane add + 8-lane multiply"
    return 8, "SSE: 4-lane add + 4-lane multiply"


def cpu_facts(args: argparse.Namespace) -> dict[str, Any]:
    """Core count, clock, flags and nominal fp32 and bf16 peaks of this machine; `args` may
    carry `clock_ghz` and `flop_per_cycle` overrides."""
    blocks, lscpu = _cpuinfo_blocks(), _lscpu()
    first = blocks[0] if blocks else {}
    cores = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    per_socket = int(lscpu.get("Core(s) per socket", 0)) * int(lscpu.get("Socket(s)", 1))
    physical = len(cores) or per_socket or os.cpu_count() or 1
    name = first.get("model name", lscpu.get("Model name", "unknown CPU"))
    mhz = [float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b]
    if getattr(args, "clock_ghz", None):
        clock, clock_source = args.clock_ghz, "--clock-ghz"
    elif "@" in name and name.rstrip().endswith("GHz"):
        clock, clock_source = float(name.rsplit("@", 1)[1].strip()[:-3]), "model name"
    elif mhz:
        clock, clock_source = max(mhz) / 1e3, "/proc/cpuinfo cpu MHz"
    elif "CPU max MHz" in lscpu:
        clock, clock_source = float(lscpu["CPU max MHz"]) / 1e3, "lscpu CPU max MHz"
    else:
        raise SystemExit("cannot read the CPU clock; pass --clock-ghz")
    flags = set(first.get("flags", lscpu.get("Flags", "")).split())
    per_cycle, rule = flop_per_cycle(
        flags, first.get("vendor_id", ""), int(first.get("cpu family", 0))
    )
    if getattr(args, "flop_per_cycle", None):
        per_cycle, rule = args.flop_per_cycle, "--flop-per-cycle"
    return {
        "name": name,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical,
        "clock_ghz": round(clock, 3),
        "clock_source": clock_source,
        "flop_per_cycle": per_cycle,
        "flop_per_cycle_rule": rule,
        "simd_flags": sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"}),
        "peak_gflops": round(physical * clock * per_cycle, 1),
        # AVX512_BF16's dot product does 2 bf16 multiply-adds per fp32 lane: twice fp32's rate.
        "peak_gflops_bf16": round(2 * physical * clock * per_cycle, 1)
        if "avx512_bf16" in flags
        else None,
    }


def gemm_gflops(dtype: torch.dtype, size: int = 4096, runs: int = 6) -> float:
    """GFLOP/s of a `size`² matrix product in `dtype` on torch's threads (median of `runs`)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(seconds)[runs // 2] / 1e9


def measured_peaks(bf16: bool) -> dict[str, float | None]:
    """Measured GEMM GFLOP/s in fp32 and (when the CPU has native bf16) bf16; the clock this
    implies for fp32 shows when the CPU runs above its nominal clock (turbo)."""
    return {
        "gemm_gflops": round(gemm_gflops(torch.float32), 1),
        "gemm_gflops_bf16": round(gemm_gflops(torch.bfloat16), 1) if bf16 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clock-ghz", type=float, help="override the clock read from the CPU")
    parser.add_argument("--flop-per-cycle", type=int, help="override the FLOP/cycle rule")
    args = parser.parse_args()
    facts = cpu_facts(args)
    torch.set_num_threads(facts["physical_cores"])
    facts.update(measured_peaks(facts["peak_gflops_bf16"] is not None))
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main()
