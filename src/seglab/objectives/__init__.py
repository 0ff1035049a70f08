"""What training minimises and evaluation reports: losses, pixel metrics, instance metrics.

- `losses`: the one loss registry, ``create_loss(name, mode)`` with ``mode`` ``"binary"`` (one
  logit channel) or ``"multiclass"`` (C channels, class-index targets), and class weights from
  the data; `loss_modules` holds the ``nn.Module`` classes it builds, `binary_losses` and
  `multiclass_losses` the functional cores.
- `metrics`: binary confusion counts ``(tp, fp, fn, tn)`` and the scores computed from them.
- `multiclass_metrics`: a ``(C, C)`` confusion matrix and per-class and mean scores (mIoU).
- `instance_metrics`: object matching by IoU and the DSB 2018 score of label images.

Names are imported lazily, so `seglab.objectives.multiclass_metrics` and
`seglab.objectives.instance_metrics` stay usable without importing torch.

Example:
    >>> from seglab.objectives import create_loss
    >>> create_loss("ce_dice", mode="multiclass", ignore_index=255)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from seglab.exports import lazy_attribute

# Target value of pixels that do not count (Cityscapes' void), shared by the multi-class losses,
# metrics and evaluation.
IGNORE_INDEX = 255

_EXPORTS = {
    "LOSSES": "seglab.objectives.losses",
    "LossMode": "seglab.objectives.losses",
    "create_loss": "seglab.objectives.losses",
    "loss_parameters": "seglab.objectives.losses",
    "ChannelwiseLoss": "seglab.objectives.losses",
    "class_weights_from_fraction": "seglab.objectives.losses",
    "inverse_frequency_weights": "seglab.objectives.losses",
    "METRICS": "seglab.objectives.metrics",
    "confusion_counts": "seglab.objectives.metrics",
    "confusion_counts_torch": "seglab.objectives.metrics",
    "summarize": "seglab.objectives.metrics",
    "threshold_sweep": "seglab.objectives.metrics",
    "confusion_matrix": "seglab.objectives.multiclass_metrics",
    "confusion_matrix_torch": "seglab.objectives.multiclass_metrics",
    "class_scores": "seglab.objectives.multiclass_metrics",
    "summarize_multiclass": "seglab.objectives.multiclass_metrics",
    "IOU_THRESHOLDS": "seglab.objectives.instance_metrics",
    "InstanceScore": "seglab.objectives.instance_metrics",
    "iou_matrix": "seglab.objectives.instance_metrics",
    "match_counts": "seglab.objectives.instance_metrics",
    "score_image": "seglab.objectives.instance_metrics",
    "summarize_instances": "seglab.objectives.instance_metrics",
    "per_threshold_table": "seglab.objectives.instance_metrics",
}

__all__ = ["IGNORE_INDEX", *_EXPORTS]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
