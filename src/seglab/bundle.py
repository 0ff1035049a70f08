"""Model bundles: `weights.safetensors` + `seglab.json`. Loading never unpickles anything."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seglab import __version__
from seglab.atomic_files import atomic_directory, atomic_write_json
from seglab.bundle_schema import check_metadata
from seglab.errors import BundleError

if TYPE_CHECKING:
    import torch

FORMAT = "seglab-bundle"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
METADATA = "seglab.json"


def make_metadata(
    *,
    model_name: str,
    model_kwargs: dict[str, Any],
    preprocessing: dict[str, Any],
    threshold: float,
    metrics: dict[str, Any],
    config: dict[str, Any],
    class_names: list[str] | None = None,
    instances: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe a segmentation model so a bundle can be used without its run folder.

    `labels` (a `LabelMapping.to_dict()`: class names, palette, ignore index) makes it a
    multi-class model (softmax, argmax); without it the model is binary (sigmoid, threshold).
    """
    if labels is not None:
        class_names = list(labels["names"])
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seglab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": "multiclass" if labels is not None else "binary",
        "model": {"name": model_name, "kwargs": model_kwargs},
        "in_channels": model_kwargs["in_channels"],
        "num_classes": model_kwargs["num_classes"],
        "class_names": class_names or ["background", "foreground"],
        "preprocessing": preprocessing,
        "threshold": threshold,
        "instances": instances or {},
        # What each logit channel means: the foreground, then (boundary-aware models) borders.
        "outputs": outputs or ["foreground"],
        "labels": labels,
        "metrics": metrics,
        "config": config,
    }


def save_bundle(model: torch.nn.Module, metadata: dict[str, Any], path: str | Path) -> Path:
    """Write the bundle folder atomically (temp folder, then rename) and return its path."""
    from safetensors.torch import save_file

    path = Path(path)
    # safetensors wants contiguous tensors; channels_last weights are not.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_directory(path) as temporary:
        save_file(state, str(temporary / WEIGHTS), metadata={"format": FORMAT})
        atomic_write_json(temporary / METADATA, metadata)
    return path


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_onnx_digests(path: Path, entry: dict[str, Any]) -> None:
    """Refuse a `model.onnx` that is not the one `seglab export` wrote from these weights.

    Bundles exported before the digests were recorded (no `sha256` in `entry`) are accepted.

    Raises:
        BundleError: `model.onnx` or `weights.safetensors` changed since the export.
    """
    for name, key in ((entry.get("file", "model.onnx"), "sha256"), (WEIGHTS, "weights_sha256")):
        expected = entry.get(key)
        if expected is not None and file_sha256(path / name) != expected:
            raise BundleError(
                f"{path / name}: differs from the file `seglab export` wrote (its SHA-256 is "
                f"not the one seglab.json records), so model.onnx may not be this bundle's "
                f"model; run `seglab export --model {path}` again"
            )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check `seglab.json` of a bundle folder."""
    path = Path(path)
    meta_path = path / METADATA
    if not path.is_dir():
        raise BundleError(f"{path}: not a model bundle folder (expected {METADATA} and {WEIGHTS})")
    try:
        metadata: dict[str, Any] = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise BundleError(
            f"{meta_path}: missing; a bundle is the `model/` folder of a run"
        ) from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise BundleError(f"{meta_path}: must hold a JSON object, not a {type(metadata).__name__}")
    if metadata.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a seglab bundle (format={metadata.get('format')!r})")
    version = metadata.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise BundleError(
            f"{meta_path}: written by a newer seglab ({metadata.get('seglab_version')}); upgrade"
        )
    check_metadata(metadata, str(meta_path))
    return metadata


def load_bundle(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model of a bundle with its weights, in eval mode, on the CPU.

    The model is built offline (`seglab.models.offline_kwargs`): pretrained weights its
    arguments name are not downloaded, the bundle's weights replace them.
    """
    from safetensors.torch import load_file

    from seglab.models import create_model, offline_kwargs

    path = Path(path)
    metadata = read_metadata(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise BundleError(f"{weights}: missing; the bundle is incomplete, export it again")
    try:
        name = metadata["model"]["name"]
        model = create_model(name, **offline_kwargs(name, metadata["model"]["kwargs"]))
    except ValueError as exc:
        raise BundleError(f"{path / METADATA}: cannot build its model ({exc})") from None
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:
        detail = " ".join(str(exc).split())  # torch lists each mismatch on its own line
        raise BundleError(f"{weights}: cannot load weights ({detail})") from None
    return model.eval(), metadata
