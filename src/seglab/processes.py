"""Child processes that never outlive seglab: `die_with_parent` (the kernel kills a child
whose parent died, even by SIGKILL) and `run_until_stopped` (a server command in its own
process group, stopped with all its workers when seglab is interrupted or terminated)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["die_with_parent", "run_until_stopped"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent exits (Linux; elsewhere nothing),
    and exit now if `parent` is already gone (it died before this process asked)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this Python runs on
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


class _Terminated(Exception):
    """SIGTERM arrived: unwind so that the process group is stopped."""


def run_until_stopped(command: Sequence[str], grace: float = 10.0) -> int:
    """Run `command` in a process group of its own until it exits, and stop the whole group
    (its workers too) when this process is interrupted (SIGINT, Ctrl+C) or terminated
    (SIGTERM): SIGTERM first, SIGKILL after `grace` seconds. The command's direct child also
    dies with this process if that is killed outright (`die_with_parent`).

    Returns:
        The command's exit code, or 130 / 143 after SIGINT / SIGTERM.
    """
    parent = os.getpid()
    process = subprocess.Popen(
        list(command), start_new_session=True, preexec_fn=lambda: die_with_parent(parent)
    )

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 130
    except _Terminated:
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(process, grace)


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # What is left of the group (workers slower than their leader, or a leader that ignored
    # SIGTERM) is killed.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
