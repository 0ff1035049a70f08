"""seglab: U-Net segmentation from a folder of images and masks to a tuned, evaluated model.

The public API is imported lazily so `import seglab` (and `seglab --help`) stays fast:

    import seglab
    cfg = seglab.load_config("exp.yaml", overrides=["train.epochs=30"])
    run = seglab.train(cfg, "runs/exp")
    report = seglab.evaluate(run.bundle_path, "data/test", "runs/exp/eval/external")
    mask = seglab.Predictor.from_bundle(run.bundle_path).predict(image).mask
"""

from __future__ import annotations

from typing import Any

from seglab.exports import lazy_attribute

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "seglab.config",
    "load_config": "seglab.config",
    "train": "seglab.training.run",
    "resume": "seglab.training.run",
    "RunResult": "seglab.training.run",
    "evaluate": "seglab.evaluation.segmentation",
    "Predictor": "seglab.inference.predictor",
    "predict_files": "seglab.inference.files",
    "create_model": "seglab.models",
    "create_loss": "seglab.objectives.losses",
    "load_bundle": "seglab.bundle",
    "write_synthetic": "seglab.data.synthetic",
    "find_samples": "seglab.data.layouts",
    "run_demo": "seglab.demo",
    "compare": "seglab.training.compare",
    "cross_validate": "seglab.training.crossval",
    "export_onnx": "seglab.deploy.export",
    "load_predictor": "seglab.inference.loading",
    "rle_encode": "seglab.rle",
    "rle_decode": "seglab.rle",
    "instances_from_mask": "seglab.postprocess",
    "SeglabError": "seglab.errors",
    "DataError": "seglab.errors",
    "ConfigError": "seglab.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(__all__)
