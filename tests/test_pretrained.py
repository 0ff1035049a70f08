"""The shipped `nuclei` bundle: a fixed file, loaded by name wherever a bundle goes, predicting
nuclei on a held-out synthetic image, exporting to ONNX, and starting a fine-tune."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import seglab
from seglab.bundle import WEIGHTS, read_metadata
from seglab.cli.options import TrainingOptions
from seglab.data.nuclei_synth import render_nuclei
from seglab.inference import load_predictor
from seglab.pretrained import bundle_path

# The shipped weights; retraining (benchmarks/train_generalist.py --ship) changes them, and
# this line with them, on purpose.
WEIGHTS_SHA256 = "776d112ae5d980b3ee5f2182af348915bb06363d42f6ba6fda5952f4649c40fd"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def test_the_shipped_bundle_is_the_fixed_file() -> None:
    folder = bundle_path("nuclei")
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    assert digest == WEIGHTS_SHA256
    assert read_metadata(folder)["outputs"] == ["foreground", "borders"]
    assert sum(f.stat().st_size for f in folder.iterdir()) < 5 * 2**20


def test_nuclei_by_name_segments_a_held_out_fluorescence_image() -> None:
    # Seed 12345 is never used for training data (the script trains on seed 0).
    image, labels = render_nuclei(np.random.default_rng([12345, 0]), 256, "fluorescence")
    prediction = load_predictor("nuclei").predict(image, instances=True)
    assert _dice(prediction.mask, labels > 0) > 0.8
    found, true = int(prediction.instances.max()), int(labels.max())
    assert 0.5 * true <= found <= 1.5 * true


def test_predict_model_nuclei_on_the_command_line(tmp_path: Path) -> None:
    image, _ = render_nuclei(np.random.default_rng([12345, 1]), 200, "fluorescence")
    Image.fromarray(image).save(tmp_path / "cells.png")
    seglab(
        "predict",
        "--model",
        "nuclei",
        "--instances",
        str(tmp_path / "cells.png"),
        "--out",
        str(tmp_path / "out"),
    )
    labels = np.asarray(Image.open(next((tmp_path / "out").glob("cells_labels.png"))))
    assert labels.max() > 3


def test_the_shipped_bundle_exports_to_onnx_with_parity(tmp_path: Path) -> None:
    from seglab.deploy.export import export_onnx

    copy = shutil.copytree(bundle_path("nuclei"), tmp_path / "nuclei")
    result = export_onnx(copy)
    assert result.path.is_file()
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4


def test_init_nuclei_takes_its_architecture() -> None:
    config = TrainingOptions(init="nuclei").load()
    kwargs = read_metadata(bundle_path("nuclei"))["model"]["kwargs"]
    assert config.model.params["n_filters"] == kwargs["n_filters"]
    assert config.data.target == "boundary"
    assert config.data.normalize == "percentile"
