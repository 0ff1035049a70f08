"""Pick the right predictor for a bundle or a baseline name, without importing torch unless the
torch backend is the one chosen."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from seglab.errors import ConfigError
from seglab.kinds import kind_of
from seglab.precision import cuda_gpu_present, prefer_torch_on_cpu


def load_predictor(
    model: str | Path, device: str = "auto", backend: str = "auto", precision: str = "auto"
) -> Any:
    """A predictor for a bundle folder, or for a baseline by name (e.g. "otsu": no training).

    Baselines and networks share the interface `predict(image, threshold=None, instances=False)
    -> Prediction`, `.threshold`, `.metadata` and `.kind` (see `seglab.kinds`).

    Args:
        model: Bundle folder, shipped bundle name (`seglab.pretrained`, e.g. "nuclei"),
            bioimage.io package exported by seglab (`.zip`, `seglab.inference.packages`) or
            baseline name.
        device: For the torch backend: "auto", "cpu", "cuda", ...
        backend: "torch", "onnx" (ONNX Runtime only, torch is never imported) or "auto": onnx
            when the bundle has `model.onnx` and onnxruntime is installed, unless torch is to
            run on a GPU, or the CPU has native bf16 and `precision` allows it (torch in bf16 is
            then the faster), else torch.
        precision: For the torch backend: "auto" (bf16 where native), "32" or "bf16".
    """
    from seglab.baseline import BASELINES, create_baseline
    from seglab.bundle import read_metadata
    from seglab.inference.packages import is_package, package_bundle
    from seglab.pretrained import bundle_path

    path = bundle_path(model)
    if is_package(path):
        path = package_bundle(path)
    if not path.exists() and str(model) in BASELINES:
        return create_baseline(str(model))
    metadata = read_metadata(path)
    name = metadata["model"]["name"]
    if name in BASELINES:
        return create_baseline(name, **metadata["model"]["kwargs"])
    kind = kind_of(metadata)
    if kind.volumes:
        from seglab.inference.volumes import load_volume_predictor

        return load_volume_predictor(path, device, backend, precision)
    if kind.classification:
        from seglab.inference.classifier import Classifier

        return Classifier.from_bundle(path)
    if backend == "onnx" or (backend == "auto" and onnx_preferred(path, precision, device)):
        from seglab.inference.onnx_backend import OnnxPredictor

        return OnnxPredictor.from_bundle(path)
    if backend not in ("auto", "torch"):
        raise ConfigError(f"--backend: unknown '{backend}'; valid: auto, torch, onnx")
    from seglab.inference.predictor import Predictor

    return Predictor.from_bundle(path, device, precision)


def onnx_preferred(path: Path, precision: str, device: str = "auto") -> bool:
    """Whether backend "auto" runs the bundle in `path` with ONNX Runtime (on the CPU): not
    when torch is to run on a GPU (`device` names one, or is "auto" and there is one)."""
    if not (path / "model.onnx").is_file() or prefer_torch_on_cpu(precision):
        return False
    if device != "cpu" and (device != "auto" or cuda_gpu_present()):
        return False
    return importlib.util.find_spec("onnxruntime") is not None
