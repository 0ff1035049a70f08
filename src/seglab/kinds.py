"""The kind of problem a run or a bundle solves, decided once and passed as an object.

Binary 2D segmentation, multi-class 2D segmentation, volumes (binary or multi-class) and image
classification differ in what a model outputs, which loss family trains it, which score
validates it and how its predictions are drawn and scored. `kind_of` is the one place that
reads those facts from strings (a config's `task`, `data.layout` and classes, or a bundle's
`task` and `spatial_dims`); everything downstream asks the `Kind` it is given.

Nothing here imports torch, and only `seglab.config` of seglab, so every layer may use it.

Example:
    >>> kind_of({"task": "multiclass", "spatial_dims": 3}).name
    'multiclass volumes'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from seglab.config import Config

__all__ = [
    "BINARY",
    "BINARY_VOLUMES",
    "CLASSIFICATION",
    "KINDS",
    "MULTICLASS",
    "MULTICLASS_VOLUMES",
    "Kind",
    "kind_of",
]


@dataclass(frozen=True)
class Kind:
    """What differs between the problems seglab solves.

    Attributes:
        name: How reports and messages name it.
        spatial_dims: 2 (images) or 3 (volumes); 0 for classification (one label per image).
        multiclass: C softmax outputs and an argmax (else one sigmoid output and a threshold).
        task: The bundle's `task` entry ("binary", "multiclass" or "classification").
        metric: The validation score of training ("dice", "miou" or "accuracy").
    """

    name: str
    spatial_dims: Literal[0, 2, 3]
    multiclass: bool
    task: Literal["binary", "multiclass", "classification"]
    metric: Literal["dice", "miou", "accuracy"]

    @property
    def classification(self) -> bool:
        """One class per image, not per pixel."""
        return self.spatial_dims == 0

    @property
    def volumes(self) -> bool:
        """3D inputs: trained on patches, predicted by 3D sliding window."""
        return self.spatial_dims == 3

    @property
    def loss_mode(self) -> Literal["binary", "multiclass"]:
        """The loss family (see `seglab.objectives.losses.create_loss`)."""
        return "multiclass" if self.multiclass else "binary"

    @property
    def thresholded(self) -> bool:
        """A tuned threshold turns probabilities into masks (binary segmentation only)."""
        return not self.multiclass and not self.classification


BINARY = Kind("binary segmentation", 2, False, "binary", "dice")
MULTICLASS = Kind("multi-class segmentation", 2, True, "multiclass", "miou")
BINARY_VOLUMES = Kind("binary volumes", 3, False, "binary", "dice")
MULTICLASS_VOLUMES = Kind("multi-class volumes", 3, True, "multiclass", "miou")
CLASSIFICATION = Kind("image classification", 0, True, "classification", "accuracy")
KINDS = (BINARY, MULTICLASS, BINARY_VOLUMES, MULTICLASS_VOLUMES, CLASSIFICATION)


def kind_of(source: Config | dict[str, Any]) -> Kind:
    """The kind of a resolved config (its `data.layout` detected) or of a bundle's metadata.

    A config: `task: classification`; else `data.layout: volumes` gives volumes; masks hold
    classes with the cityscapes layout, a `data.num_classes` or a YAML label mapping. Bundle
    metadata: its `task` and `spatial_dims` (bundles before `task` existed are binary 2D).
    """
    if isinstance(source, dict):
        task = source.get("task", "binary")
        if task == "classification":
            return CLASSIFICATION
        multiclass = task == "multiclass"
        volumes = int(source.get("spatial_dims", 2)) == 3
    else:
        from seglab.config import is_multiclass

        if source.task == "classification":
            return CLASSIFICATION
        multiclass = is_multiclass(source.data)
        volumes = source.data.layout == "volumes"
    if volumes:
        return MULTICLASS_VOLUMES if multiclass else BINARY_VOLUMES
    return MULTICLASS if multiclass else BINARY
