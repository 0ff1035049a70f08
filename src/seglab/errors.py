"""Errors a user can cause. Each names the offending file or key and says how to fix it."""

from __future__ import annotations

from pathlib import Path


class SeglabError(Exception):
    """Bad input from a user; the CLI prints it as one message, without a traceback."""


class ConfigError(SeglabError):
    """A configuration key is unknown, missing or of the wrong type."""


class DataError(SeglabError):
    """A data file or folder is missing, unreadable or inconsistent.

    Args:
        path: The offending file or folder.
        problem: What is wrong with it.
        hint: How to fix it (optional).
    """

    def __init__(self, path: str | Path, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        message = f"{path}: {problem}"
        if hint:
            message += f"\n  hint: {hint}"
        super().__init__(message)


class BundleError(SeglabError):
    """A model bundle is missing, incomplete or was written by an incompatible version."""


class PixelLimitError(DataError):
    """A file declares more pixels (or voxels) than `seglab.data.io.pixel_limit` allows, or
    would decode more at once; it is refused from its header, before anything is decoded."""


class InferenceStoppedError(SeglabError):
    """Inference was stopped before it ended: its time ran out or its client went away."""
