"""bioimage.io export: a seglab bundle as a model package that Fiji, QuPath, deepImageJ and
ilastik run.

The zip holds rdf.yaml (`seglab.deploy.bioimageio_rdf`), the weights in ONNX (by
`seglab.deploy.export.export_onnx`, parity-checked) and TorchScript (traced, checked against
torch at a second size), a test image and the model's probabilities on it, a cover, a README and
seglab's own bundle files as attachments, so that `seglab predict --model model.zip` runs exactly
the bundle (`seglab.inference.packages`).

Example:
    >>> result = export_bioimageio("nuclei", "nuclei.bioimageio.zip")  # doctest: +SKIP
    >>> result.path.name  # doctest: +SKIP
    'nuclei.bioimageio.zip'
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seglab.atomic_files import atomic_path
from seglab.bundle import METADATA, WEIGHTS, load_bundle, read_metadata
from seglab.deploy.bioimageio_files import (
    test_image,
    write_cover,
    write_readme,
    write_test_tensors,
)
from seglab.deploy.bioimageio_rdf import PackageFiles, model_description
from seglab.deploy.export import PARITY_TOLERANCE, check_exportable, export_onnx
from seglab.errors import SeglabError
from seglab.inference.base import model_divisor
from seglab.kinds import kind_of
from seglab.pretrained import bundle_path

__all__ = ["BioimageioResult", "default_package_path", "export_bioimageio"]

TORCHSCRIPT_FILE = "model.torchscript.pt"


@dataclass(frozen=True)
class BioimageioResult:
    """What `export_bioimageio` wrote.

    Attributes:
        path: The package zip.
        onnx_diff: Largest |torch - onnxruntime| of the ONNX export's parity check.
        torchscript_diff: Largest |eager - traced| probability at a size other than the trace's.
        seconds: Wall time.
    """

    path: Path
    onnx_diff: float | None
    torchscript_diff: float
    seconds: float


class ProbabilitiesModule(nn.Module):
    """A segmentation network followed by its sigmoid (softmax for multi-class models).

    Inputs are multiples of the network's divisor (the package's sizes), so no padding is
    needed and the traced graph has no size-dependent branch.
    """

    def __init__(self, model: nn.Module, multiclass: bool) -> None:
        super().__init__()
        self.model = model
        self.multiclass = multiclass

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.model(image)
        return logits.softmax(1) if self.multiclass else torch.sigmoid(logits)


def default_package_path(bundle: str | Path) -> Path:
    """`<bundle>.bioimageio.zip` beside the bundle folder (in the working directory for a
    shipped bundle, whose folder lies inside the installed package)."""
    path = bundle_path(bundle)
    if path != Path(bundle):
        return Path(f"{bundle}.bioimageio.zip")
    return path.parent / f"{path.name}.bioimageio.zip"


def export_bioimageio(bundle: str | Path, out: str | Path | None = None) -> BioimageioResult:
    """Write a bioimage.io model package (zip) of a 2D segmentation bundle.

    Args:
        bundle: Bundle folder or shipped bundle name (e.g. "nuclei").
        out: The zip to write (default `default_package_path(bundle)`); replaced atomically.

    Returns:
        The zip written, the two weight formats' parity differences and the time taken.

    Raises:
        SeglabError: The bundle is not exportable (baseline, classifier, volumes, views other
            than "raw") or an export failed its parity check.
    """
    start = time.perf_counter()
    path = bundle_path(bundle)
    target = Path(out) if out is not None else default_package_path(bundle)
    if target.suffix != ".zip":
        raise SeglabError(f"--out {target}: a bioimage.io package is a .zip file")
    metadata = read_metadata(path)
    check_packable(path, metadata)
    with tempfile.TemporaryDirectory(prefix="seglab-bioimageio-") as folder:
        descr, onnx_diff, torchscript_diff = _describe(path, metadata, Path(folder))
        zip_path = _save_package(descr, Path(folder) / "package.zip")
        with atomic_path(target) as temporary:
            shutil.copyfile(zip_path, temporary)
    return BioimageioResult(target, onnx_diff, torchscript_diff, time.perf_counter() - start)


def check_packable(path: Path, metadata: dict[str, Any]) -> None:
    """Raise `SeglabError` unless the bundle is a 2D segmentation network on raw images."""
    check_exportable(path, metadata)
    kind = kind_of(metadata)
    if kind.volumes:
        raise SeglabError(
            f"{path}: '{kind.name}' bundles cannot be exported to bioimage.io yet (2D images "
            f"only); use `seglab export --format onnx`"
        )
    views = list(metadata["preprocessing"].get("views") or ["raw"])
    if views != ["raw"]:
        raise SeglabError(
            f"{path}: seglab.json preprocessing.views is {views}; bioimage.io export supports "
            f'only ["raw"] (the extra views are computed by seglab, not by the spec\'s steps)'
        )
    if metadata["preprocessing"].get("input_size"):
        raise SeglabError(
            f"{path}: seglab.json preprocessing.input_size is set (images are resized to a "
            f"fixed size); bioimage.io export supports bundles that predict at any size"
        )


def _describe(path: Path, metadata: dict[str, Any], work: Path) -> tuple[Any, float | None, float]:
    """Write the package's files into `work`; return the description and the ONNX and
    TorchScript parity differences."""
    copy = work / "bundle"
    copy.mkdir()
    for name in (METADATA, WEIGHTS):
        shutil.copyfile(path / name, copy / name)
    onnx = export_onnx(copy)
    model, _ = load_bundle(copy)
    wrapper = ProbabilitiesModule(model, kind_of(metadata).multiclass).eval()
    divisor = model_divisor(metadata)
    torchscript = work / TORCHSCRIPT_FILE
    torchscript_diff = trace_torchscript(
        wrapper, int(metadata["in_channels"]), divisor, torchscript
    )
    image = test_image(metadata, divisor)
    test_input, test_output = write_test_tensors(wrapper, metadata, image, work)
    files = PackageFiles(
        onnx=onnx.path,
        torchscript=torchscript,
        test_input=test_input,
        test_output=test_output,
        cover=write_cover(image, test_output, work / "cover.png"),
        documentation=write_readme(metadata, work / "README.md"),
        attachments=(copy / METADATA, copy / WEIGHTS),
        opset=onnx.opset,
    )
    return (
        model_description(read_metadata(copy), divisor, files),
        onnx.max_abs_diff,
        torchscript_diff,
    )


def trace_torchscript(model: nn.Module, in_channels: int, divisor: int, path: Path) -> float:
    """Trace `model` on a `(2, C, 3d, 2d)` input, save it to `path` and return the largest
    |eager - traced| output on a `(1, C, 4d, 5d)` one.

    Raises:
        SeglabError: The traced module differs from eager by more than `PARITY_TOLERANCE`.
    """
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, in_channels, 3 * divisor, 2 * divisor, generator=generator)
    check = torch.rand(1, in_channels, 4 * divisor, 5 * divisor, generator=generator)
    with torch.inference_mode(), warnings.catch_warnings():
        # The padding helpers' size checks become constants (no padding: sizes are multiples).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        difference = float((traced(check) - model(check)).abs().max())
    if difference > PARITY_TOLERANCE:
        raise SeglabError(
            f"the TorchScript trace differs from torch by {difference:.3g} > "
            f"{PARITY_TOLERANCE:g} at another input size; the model has a size-dependent branch"
        )
    torch.jit.save(traced, str(path))
    return difference


def _save_package(descr: Any, path: Path) -> Path:
    from bioimageio.spec import save_bioimageio_package

    return Path(save_bioimageio_package(descr, output_path=path))
