"""The shape of `seglab.json`, checked when a bundle is read: one error lists every problem.

Only what prediction relies on is checked (types, ranges, known names); other entries (metrics,
the training config, notes) pass through untouched, and entries newer bundles add are allowed.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seglab.errors import BundleError


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ModelEntry(_Entry):  # type: ignore[no-redef]  # the pydantic plugin sees `kwargs` twice
    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class PreprocessingEntry(_Entry):
    normalize: Literal["scale", "percentile"] = "scale"
    percentiles: tuple[float, float] = (1.0, 99.0)
    tile: int | list[int] | None = None  # a side, or one per axis (volumes)
    views: list[str] | None = None

    @field_validator("tile")
    @classmethod
    def _tile_sides(cls, value: int | list[int] | None) -> int | list[int] | None:
        sides = [value] if isinstance(value, int) else value or []
        if any(side < 4 for side in sides):
            raise ValueError(f"tile sides must be at least 4, got {value}")
        return value

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError(f"must be two percentiles with 0 <= low < high <= 100, got {value}")
        return value

    @field_validator("views")
    @classmethod
    def _known_views(cls, value: list[str] | None) -> list[str] | None:
        from seglab.data.views import VIEWS

        unknown = [name for name in value or [] if name not in VIEWS]
        if unknown or value == []:
            raise ValueError(f"unknown views {unknown or '[]'}; valid: {', '.join(VIEWS)}")
        return value


class BundleMetadata(_Entry):
    """The entries of `seglab.json` that prediction reads."""

    format: str
    format_version: int = Field(ge=0)
    task: Literal["binary", "multiclass", "classification"] = "binary"
    model: ModelEntry
    in_channels: int | None = Field(default=None, ge=1)
    preprocessing: PreprocessingEntry = Field(default_factory=PreprocessingEntry)
    threshold: float | None = Field(default=None, ge=0, le=1)


def check_metadata(metadata: dict[str, Any], where: str) -> None:
    """Raise one BundleError naming `where` and every entry of `metadata` that is wrong."""
    try:
        BundleMetadata.model_validate(metadata)
    except ValidationError as exc:
        problems = [
            f"'{'.'.join(str(part) for part in error['loc'])}': {_plain(error)}"
            for error in exc.errors()
        ]
        raise BundleError(
            f"{where}: {'; '.join(problems)}; re-export or re-train the bundle"
        ) from None


def _plain(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] in ("missing", "value_error") or isinstance(value, dict):
        return message
    shown = "NaN" if isinstance(value, float) and math.isnan(value) else repr(value)
    return f"{message} (got {shown})"
