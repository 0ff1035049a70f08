"""Prediction with a trained model: pre-processing, forward pass, probabilities, masks.

Imported lazily, so that the ONNX Runtime path never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Prediction": "seglab.inference.base",
    "BasePredictor": "seglab.inference.base",
    "Predictor": "seglab.inference.predictor",
    "load_predictor": "seglab.inference.loading",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seglab.inference' has no attribute {name!r}")
