"""Evaluation: scores, per-image tables, figures and reports for every kind of model
(binary and multi-class images, volumes, classification); `segmentation.evaluate` is the one
entry for all of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EvaluationResult"]


@dataclass
class EvaluationResult:
    """Dataset metrics, one row per image (or volume), and the folder the outputs went to."""

    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    out_dir: Path
