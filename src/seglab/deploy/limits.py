"""What one request may cost the server: upload bytes, decoded pixels and inference seconds.

A request is refused before any work it cannot afford: a body past `max_upload_mb` while it
is read, an image whose header declares more than `max_pixels` *charged* pixels before it is
decoded, and inference still running after `max_seconds` (or whose client has gone) between two
batches of tiles. Each limit is an option of `seglab serve` and an environment variable, so
uvicorn's worker processes get the same ones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from seglab.errors import ConfigError

__all__ = [
    "ENV_MAX_PIXELS",
    "ENV_MAX_SECONDS",
    "ENV_MAX_UPLOAD_MB",
    "MIN_CHARGED_SIDE",
    "ServeLimits",
    "charged_pixels",
    "release_memory",
]

ENV_MAX_UPLOAD_MB = "SEGLAB_SERVE_MAX_UPLOAD_MB"
ENV_MAX_PIXELS = "SEGLAB_SERVE_MAX_PIXELS"
ENV_MAX_SECONDS = "SEGLAB_SERVE_MAX_SECONDS"
# The network pads each side up to its tile multiple (16 for a depth-4 U-Net, 32 for depth 5),
# so a 1 x 60,000,000 strip costs as much as 32 x 60,000,000 pixels: it is charged that way.
MIN_CHARGED_SIDE = 32


def charged_pixels(width: int, height: int) -> int:
    """The pixels an image costs the network: each side counted as at least `MIN_CHARGED_SIDE`.

    Example:
        >>> charged_pixels(1, 100_000), charged_pixels(640, 480)
        (3200000, 307200)
    """
    return max(width, MIN_CHARGED_SIDE) * max(height, MIN_CHARGED_SIDE)


@dataclass(frozen=True)
class ServeLimits:
    """The most one request may send, decode and compute.

    Attributes:
        max_upload_mb: Largest upload, in MiB (2**20 bytes).
        max_pixels: Most charged pixels (`charged_pixels`) of an image; 8192 x 8192 by
            default: its float32 probabilities alone take 256 MB and a U-Net's activations
            many times that, so a larger image should be tiled by the client.
        max_seconds: Longest inference of one request, waiting for the model included; past
            it the request is answered 503 and its work stops at the next batch of tiles.
    """

    max_upload_mb: float = 20.0
    max_pixels: int = 8192 * 8192
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        _check_positive("max-upload-mb", self.max_upload_mb, "20")
        _check_positive("max-pixels", self.max_pixels, str(8192 * 8192))
        _check_positive("max-seconds", self.max_seconds, "120")

    @property
    def upload_bytes(self) -> int:
        """`max_upload_mb` in bytes."""
        return int(self.max_upload_mb * 2**20)

    def to_env(self) -> dict[str, str]:
        """The environment variables `from_env` reads back."""
        return {
            ENV_MAX_UPLOAD_MB: repr(self.max_upload_mb),
            ENV_MAX_PIXELS: str(self.max_pixels),
            ENV_MAX_SECONDS: repr(self.max_seconds),
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServeLimits:
        """The limits the environment sets; the defaults for those it does not.

        Raises:
            ConfigError: A variable that is not a positive number, naming it.
        """
        defaults = cls()
        pixels = _number(environ, ENV_MAX_PIXELS, defaults.max_pixels)
        return cls(
            _number(environ, ENV_MAX_UPLOAD_MB, defaults.max_upload_mb),
            int(pixels) if math.isfinite(pixels) else 0,  # 0 is refused, naming the option
            _number(environ, ENV_MAX_SECONDS, defaults.max_seconds),
        )


def _check_positive(option: str, value: float, example: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(
            f"{option.replace('-', '_')} must be a finite number > 0, got {value!r}; "
            f"e.g. seglab serve --{option} {example}"
        )


def _number(environ: Mapping[str, str], key: str, default: float) -> float:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        return float(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(
            f"{key}={raw!r}: expected a number such as {default}; unset it for that default"
        ) from None


def release_memory() -> None:
    """Give memory back after a large or failed request: collect the reference cycles that
    exceptions and decoders leave (they can hold whole images), then ask glibc to return its
    freed heap to the system (`malloc_trim`), so the server's resident size does not ratchet up
    with every large upload. Without glibc only the collection runs."""
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)
    if trim is not None:
        trim(0)
