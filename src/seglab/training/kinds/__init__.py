"""What each kind of problem brings to a training run: its plug.

`seglab.training.run.train` is the one skeleton of a run (run folder, seed, model, summary,
trainer, fit, best checkpoint, bundle, test evaluation, tracking). What differs between kinds
is here, one module per kind, each a class with the `TrainingKind` methods:

- `images.ImageTraining`: 2D segmentation, binary (threshold tuned) or multi-class (argmax);
- `volumes.VolumeTraining`: volumes, binary or multi-class, trained on patches;
- `classification.ClassificationTraining`: one label per image.

`training_kind(kind)` is the only place that maps a `seglab.kinds.Kind` to its plug.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from seglab.config import Config
    from seglab.kinds import Kind
    from seglab.training.tasks import TallyTask

__all__ = ["TrainingKind", "training_kind"]


class TrainingKind(Protocol):
    """The differences of one kind in a training run, called in this order by `train`.

    An instance holds one run: built with the resolved config and the run folder, it keeps
    the splits it loaded for the later steps.
    """

    def __init__(self, config: Config, run_dir: Path, kind: Kind) -> None: ...

    def load(self, progress: bool, assignment: dict[str, Any] | None) -> None:
        """Read and split the data (decoding into the cache where the kind has one) and write
        splits.json; `assignment` gives explicit splits (cross-validation folds)."""

    def model_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `create_model` (recorded in the bundle)."""

    def input_shape(self, new_model: Callable[[], torch.nn.Module]) -> tuple[int, ...]:
        """A training batch's shape for the model summary, `(1, C, ...)`; `new_model` builds a
        fresh model where the shape depends on its memory use (volume patches)."""

    def task(self, model: torch.nn.Module) -> TallyTask:
        """The Lightning task: the model, its loss and the epoch metric."""

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        """The training and validation loaders."""

    def metadata(self, model: torch.nn.Module, model_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The bundle's `seglab.json` content, threshold and metrics filled in later."""

    def validate(
        self, model: torch.nn.Module, metadata: dict[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        """The threshold (0.5 where none is tuned) and the validation metrics of the trained
        model, figures and per-sample files written into the run folder."""

    def evaluate_test(self, out: Path) -> dict[str, Any] | None:
        """Scores of the test split written into `out` with the validated model, or None
        when there is no test split."""


def training_kind(kind: Kind) -> type[TrainingKind]:
    """The plug of `kind`."""
    if kind.classification:
        from seglab.training.kinds.classification import ClassificationTraining

        return ClassificationTraining
    if kind.volumes:
        from seglab.training.kinds.volumes import VolumeTraining

        return VolumeTraining
    from seglab.training.kinds.images import ImageTraining

    return ImageTraining
