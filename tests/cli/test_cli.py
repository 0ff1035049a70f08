"""The command line end to end on tiny synthetic data, in real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import RUN_FOLDER_FILES, TINY_MODEL, seglab


def test_help_lists_every_command() -> None:
    out = seglab("--help").stdout
    for command in ("demo", "train", "evaluate", "predict", "data", "ui", "config"):
        assert command in out
    assert "Example" in seglab("train", "--help").stdout


def test_cli_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, seglab.cli.main\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'mlflow') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_predict_evaluate_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seglab("data", "synth", "--kind", "nuclei", "--n", "16", "--size", "48", "--out", str(data))
    assert sorted(p.name for p in data.iterdir()) == ["test", "train", "val"]
    inspected = seglab("data", "inspect", str(data), "--grid", str(tmp_path / "grid.png"))
    assert "foreground" in inspected.stdout and "dsb2018" in inspected.stdout
    assert (tmp_path / "grid.png").stat().st_size > 0

    run = tmp_path / "runs" / "r1"
    sets = [arg for item in TINY_MODEL for arg in ("--set", item)]
    seglab("train", "--data", str(data), "--epochs", "2", "--out", str(run), "--no-progress", *sets)
    for name in RUN_FOLDER_FILES:
        assert (run / name).is_file(), name
    assert len((run / "train_log.csv").read_text().strip().splitlines()) == 3
    assert (tmp_path / "runs" / "mlflow.db").is_file()

    predictions = tmp_path / "pred"
    images = sorted((data / "test").glob("*/images/*.png"))
    seglab(
        "predict",
        "--model",
        str(run / "model"),
        str(data / "test"),
        "--out",
        str(predictions),
        "--overlays",
        "--probabilities",
        "--no-progress",
    )
    masks = sorted(predictions.glob("*_mask.png"))
    assert len(masks) == len(images)
    assert len(list(predictions.glob("*_overlay.png"))) == len(images)
    mask = np.asarray(Image.open(masks[0]))
    assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255}

    evaluation = tmp_path / "eval"
    result = seglab(
        "evaluate",
        "--model",
        str(run / "model"),
        "--data",
        str(data),
        "--out",
        str(evaluation),
        "--no-progress",
    )
    metrics = json.loads((evaluation / "metrics.json").read_text())
    recorded = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert metrics["dice"] == pytest.approx(recorded["dice"])
    assert metrics["n_images"] == len(images)
    assert "dice" in result.stdout
    confusion = list((evaluation / "confusion").glob("*.png"))
    assert len(confusion) == len(images)


def test_predict_and_evaluate_do_not_import_lightning_or_mlflow(tmp_path: Path) -> None:
    from seglab.bundle import make_metadata, save_bundle
    from seglab.models import create_model

    kwargs = {"in_channels": 3, "num_classes": 1, "n_filters": 1, "depth": 2}
    meta = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing={"normalize": "scale", "percentiles": [1, 99], "input_size": None},
        threshold=0.5,
        metrics={},
        config={},
    )
    save_bundle(create_model("unet", **kwargs), meta, tmp_path / "model")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "x.png")
    code = (
        "import sys\n"
        "from seglab.cli.main import app\n"
        f"app(['predict', '--model', r'{tmp_path / 'model'}', r'{tmp_path / 'x.png'}',"
        f" '--out', r'{tmp_path / 'out'}', '--no-progress'], standalone_mode=False)\n"
        "print([m for m in ('pytorch_lightning', 'lightning', 'mlflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "x_mask.png").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--data", "/no/such/folder", "--no-track"], "/no/such/folder"),
        (["train", "--set", "train.epoch=3"], "train.epoch"),
        (["train", "--set", "model.name=nope"], "unet"),
        (["predict", "--model", "/no/bundle", "x.png", "--out", "o"], "/no/bundle"),
        (["evaluate", "--model", "/no/bundle", "--data", ".", "--out", "o"], "/no/bundle"),
        (["data", "synth", "--kind", "squares", "--out", "o"], "circles"),
    ],
)
def test_user_errors_are_one_clear_message(args: list[str], expected: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_plan_and_blobs3d_commands(tmp_path: Path) -> None:
    estimate = seglab(
        "plan",
        "--model",
        "unet3d",
        "--patch",
        "32,32,32",
        "--batch",
        "2",
        "--budget",
        "1GiB",
        "--n-filters",
        "1",
    )
    assert "activations" in estimate.stdout and "yes" in estimate.stdout
    planned = seglab("plan", "--model", "unet3d", "--budget", "256MiB", "--n-filters", "1")
    assert "largest patch side" in planned.stdout
    bad = seglab("plan", "--patch", "32,32", check=False)
    assert bad.returncode == 2 and "needs 3 whole sizes" in bad.stderr
    seglab(
        "data",
        "synth",
        "--kind",
        "blobs3d",
        "--n",
        "4",
        "--size",
        "24",
        "--no-split",
        "--out",
        str(tmp_path / "blobs"),
    )
    assert len(list((tmp_path / "blobs" / "images").glob("*.tif"))) == 4
    assert len(list((tmp_path / "blobs" / "labels").glob("*.tif"))) == 4
