"""`predict_paths`: the one prediction entry for files of every kind of model.

The predictor's `kind` picks what is written: masks (and instances, overlays, a submission) for
2D images (`seglab.inference.files.predict_files`), masks for volumes
(`seglab.inference.volumes.predict_volume_files`), a predictions.csv of classes for a
classifier (`seglab.inference.classifier.predict_image_files`). Options that a kind has no use
for (instances for a volume, overlays for a classifier) are refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError
from seglab.inference.files import LAZY_ABOVE_MEGAPIXELS

__all__ = ["PredictOptions", "predict_paths"]


@dataclass(frozen=True)
class PredictOptions:
    """What to write beside the masks, and how to spread the work (see `predict_files`).

    With `workers > 1` each worker process loads `bundle` again with `backend` and
    `precision`, and the predictor's threshold, tile, overlap and TTA settings.
    """

    probabilities: bool = False
    overlays: bool = False
    instances: bool = False
    rle: Path | None = None
    progress: bool = True
    workers: int = 1
    bundle: Path | None = None
    backend: str = "auto"
    precision: str = "auto"
    lazy_above: float | None = LAZY_ABOVE_MEGAPIXELS
    large_format: str = "tif"

    def image_only(self) -> list[str]:
        """The options asked for that only 2D image models have."""
        asked = {
            "--overlays": self.overlays,
            "--instances": self.instances,
            "--rle": self.rle is not None,
            "--workers": self.workers > 1,
        }
        return [name for name, on in asked.items() if on]


def predict_paths(
    predictor: Any, inputs: list[str | Path], out: Path, options: PredictOptions
) -> str:
    """Predict `inputs` (files, folders or glob patterns) into `out`; returns one line saying
    what was written.

    Raises:
        ConfigError: An option the predictor's kind has no use for.
    """
    kind = predictor.kind
    if kind.classification or kind.volumes:
        refused = options.image_only()
        if kind.classification and options.probabilities:
            refused.append("--probabilities")
        if refused:
            raise ConfigError(
                f"{', '.join(refused)}: not available for {kind.name} models; "
                "leave these options out"
            )
    if kind.volumes:
        from seglab.inference.volumes import predict_volume_files

        masks = predict_volume_files(predictor, inputs, out, options.probabilities)
        return f"wrote {len(masks)} volume masks to {out}"
    if kind.classification:
        from seglab.inference.classifier import predict_image_files

        return f"wrote classes and probabilities to {predict_image_files(predictor, inputs, out)}"
    from seglab.inference.files import predict_files

    results = predict_files(
        predictor,
        inputs,
        out,
        options.probabilities,
        options.overlays,
        options.instances,
        options.rle,
        options.progress,
        workers=options.workers,
        load=_worker_load(predictor, options),
        lazy_above=options.lazy_above,
        large_format=options.large_format,
    )
    submission = f", submission {options.rle}" if options.rle else ""
    return f"wrote {len(results)} masks to {out}{submission}"


def _worker_load(predictor: Any, options: PredictOptions) -> Callable[[], Any] | None:
    """How a worker process loads the same predictor, with the settings applied to it."""
    if options.workers <= 1 or options.bundle is None:
        return None
    from seglab.inference.parallel import PredictorSpec

    settings: dict[str, Any] = {"threshold": predictor.threshold}
    if hasattr(predictor, "tile"):
        settings.update(tile=predictor.tile, overlap=predictor.overlap, tta=predictor.tta)
    return PredictorSpec(str(options.bundle), options.backend, options.precision, settings)
