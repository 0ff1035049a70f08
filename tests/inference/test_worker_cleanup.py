"""`seglab predict --workers 2` killed with SIGTERM or SIGKILL leaves no process behind: not
its workers, not multiprocessing's resource tracker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's"
)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those still running (a zombie waiting for its reaper has stopped)."""
    return {pid for pid in pids if (stat := proc_stat(pid)) is not None and stat[0] != "Z"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for index in range(800):
        image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"im{index:03d}.png", compress_level=1)
    return folder


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_killing_predict_leaves_no_worker_behind(
    images: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    out = tmp_path / "out"
    args = ["predict", "--model", "otsu", str(images), "--out", str(out), "--workers", "2"]
    parent = subprocess.Popen(
        [sys.executable, "-m", "seglab", *args, "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Wait until both workers are predicting (their first masks are written).
        deadline = time.monotonic() + 90
        while not (out.is_dir() and any(out.iterdir())):
            assert parent.poll() is None, parent.stderr.read() if parent.stderr else ""
            assert time.monotonic() < deadline, "no mask written in 90 s"
            time.sleep(0.02)
        children = descendants(parent.pid)
        assert parent.poll() is None, "predict finished before it could be killed"
        assert len(children) >= 3, children  # two workers and the resource tracker
        parent.send_signal(sig)
        assert parent.wait(timeout=30) == code
        deadline = time.monotonic() + 5
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(children)
        assert not left, f"still running after 5 s: {left}"
        stderr = parent.stderr.read().decode() if parent.stderr else ""
        assert "Traceback" not in stderr
        assert len(list(out.glob("*_mask.png"))) < 800  # it was stopped midway
    finally:
        parent.kill()
        parent.wait()
        if parent.stderr:
            parent.stderr.close()
