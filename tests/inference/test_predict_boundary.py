"""Predicting never imports Lightning nor MLflow: for every kind of bundle, in a fresh interpreter.

The bundles are saved untrained (weights as initialised): what is checked is which modules
loading and predicting import, not what they predict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.bundle import make_metadata, save_bundle
from seglab.data.labels import index_mapping
from seglab.models import create_model

# What prediction must leave out of sys.modules: the training stack and what it imports.
FORBIDDEN = (
    "pytorch_lightning",
    "lightning",
    "mlflow",
    "seglab.training",
)

# Run in a fresh interpreter: load, predict one small input, print what was imported.
SCRIPT = """
import json, sys
import numpy as np
from seglab.inference.loading import load_predictor
from seglab.inference.volumes import load_volume_predictor

path, loader, shape = sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3]))
load = load_volume_predictor if loader == "volume" else load_predictor
predictor = load(path)
image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
if hasattr(predictor, "predict_proba"):
    output = predictor.predict_proba(image)
else:
    output = predictor.predict(image).mask
print(json.dumps({
    "predictor": type(predictor).__name__,
    "shape": list(output.shape),
    "imported": [name for name in json.loads(sys.argv[4]) if name in sys.modules],
}))
"""

UNET = {"in_channels": 1, "n_filters": 1, "depth": 2}
PREPROCESSING = {"normalize": "scale", "percentiles": [1, 99], "channels": 1, "views": ["raw"]}
REST = {"threshold": 0.5, "metrics": {}, "config": {}}


def binary_bundle(path: Path) -> Path:
    kwargs = {**UNET, "num_classes": 1}
    meta = make_metadata(
        model_name="unet", model_kwargs=kwargs, preprocessing=PREPROCESSING, **REST
    )
    return save_bundle(create_model("unet", **kwargs), meta, path)


def multiclass_bundle(path: Path) -> Path:
    kwargs = {**UNET, "num_classes": 3}
    labels = index_mapping(3).to_dict()
    meta = make_metadata(
        model_name="unet", model_kwargs=kwargs, preprocessing=PREPROCESSING, labels=labels, **REST
    )
    return save_bundle(create_model("unet", **kwargs), meta, path)


def volume_bundle(path: Path) -> Path:
    kwargs = {**UNET, "num_classes": 1}
    preprocessing = {**PREPROCESSING, "tile": [8, 8, 8]}
    meta = make_metadata(
        model_name="unet3d", model_kwargs=kwargs, preprocessing=preprocessing, **REST
    )
    meta["spatial_dims"] = 3
    return save_bundle(create_model("unet3d", **kwargs), meta, path)


def classification_bundle(path: Path) -> Path:
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": [8, 8]}
    preprocessing = {"normalize": "scale", "channels": 1, "image_size": [8, 8]}
    meta = make_metadata(
        model_name="cnn",
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        class_names=[str(k) for k in range(10)],
        **REST,
    )
    meta["task"] = "classification"
    return save_bundle(create_model("cnn", **kwargs), meta, path)


BUILDERS = {
    "binary": binary_bundle,
    "multiclass": multiclass_bundle,
    "volume": volume_bundle,
    "classification": classification_bundle,
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundles")
    return {kind: build(folder / kind) for kind, build in BUILDERS.items()}


def fresh_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, "-c", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    return completed


@pytest.mark.parametrize(
    ("kind", "loader", "shape", "predictor", "output"),
    [
        ("binary", "load_predictor", [16, 16], "Predictor", [16, 16]),
        ("multiclass", "load_predictor", [16, 16], "Predictor", [16, 16]),
        ("volume", "load_predictor", [8, 12, 8], "VolumePredictor", [8, 12, 8]),
        ("volume", "volume", [8, 12, 8], "VolumePredictor", [8, 12, 8]),
        ("classification", "load_predictor", [2, 8, 8, 1], "Classifier", [2, 10]),
    ],
)
def test_predicting_imports_neither_lightning_nor_mlflow(
    bundles: dict[str, Path],
    kind: str,
    loader: str,
    shape: list[int],
    predictor: str,
    output: list[int],
) -> None:
    args = [str(bundles[kind]), loader, json.dumps(shape), json.dumps(FORBIDDEN)]
    result = json.loads(fresh_python(SCRIPT, *args).stdout.splitlines()[-1])
    assert result["predictor"] == predictor and result["shape"] == output
    assert result["imported"] == [], f"predicting a {kind} bundle imported {result['imported']}"


# `seglab predict` in one interpreter, then what it imported.
CLI_SCRIPT = """
import json, sys
from seglab.cli.main import app

app(["predict", "--model", sys.argv[1], sys.argv[2], "--out", sys.argv[3]], standalone_mode=False)
print(json.dumps([name for name in json.loads(sys.argv[4]) if name in sys.modules]))
"""


@pytest.mark.parametrize(
    ("kind", "written"), [("classification", "predictions.csv"), ("binary", "a_mask.png")]
)
def test_seglab_predict_imports_neither_lightning_nor_mlflow(
    bundles: dict[str, Path], kind: str, written: str, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((8, 8), 120, np.uint8)).save(images / "a.png")
    out = tmp_path / "out"
    completed = fresh_python(
        CLI_SCRIPT, str(bundles[kind]), str(images), str(out), json.dumps(FORBIDDEN)
    )
    assert (out / written).is_file(), sorted(p.name for p in out.iterdir())
    assert json.loads(completed.stdout.splitlines()[-1]) == []
