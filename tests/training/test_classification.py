"""Classification on the segmentation engine: metrics golden values, training, cv, predict."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.config import load_config
from seglab.errors import ConfigError
from seglab.evaluation.classification import classification_metrics, confusion_matrix
from seglab.inference.loading import load_predictor
from seglab.training.crossval import cross_validate, fold_assignments
from seglab.training.run import train

FAST = ["task=classification", "data.layout=digits", "train.epochs=1", "tracking.enabled=false"]


def test_metrics_golden_values() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    matrix = confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    metrics = classification_metrics(labels, predicted, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # Class b: tp 1, predicted twice (precision 1/2), present twice (recall 1/2), f1 1/2.
    assert metrics["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    # Class c: precision 1/2, recall 1 -> f1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assert metrics["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    # Class a: precision 1, recall 2/3 -> f1 0.8; macro f1 = (0.8 + 0.5 + 2/3) / 3.
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_config_defaults_and_mismatches() -> None:
    config = load_config(None, ["task=classification"])
    assert (config.model.name, config.loss.name, config.model.params) == ("cnn", "ce", {})
    with pytest.raises(ConfigError, match="segmentation model"):
        load_config(None, ["task=classification", "model.name=unet"])
    with pytest.raises(ConfigError, match="classification model"):
        load_config(None, ["model.name=cnn"])
    with pytest.raises(ConfigError, match="cross-entropy"):
        load_config(None, ["task=classification", "loss.name=dice"])


@pytest.mark.parametrize("model", ["mlp", "mlp_dropout", "cnn"])
def test_train_writes_the_classification_run_folder(model: str, tmp_path: Path) -> None:
    result = train(
        load_config(None, [*FAST, f"model.name={model}"]), tmp_path / "run", progress=False
    )
    run = result.run_dir
    for name in (
        "config.yaml",
        "splits.json",
        "train_log.csv",
        "curves.png",
        "model/seglab.json",
        "model/weights.safetensors",
        "eval/test/metrics.json",
        "eval/test/per_image.csv",
        "eval/test/confusion_matrix.png",
        "eval/test/misclassified.png",
        "eval/test/report.html",
    ):
        assert (run / name).is_file(), name
    assert "val_accuracy" in (run / "train_log.csv").read_text().splitlines()[0]
    metrics = json.loads((run / "eval/test/metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and len(metrics["per_class"]) == 10
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["test"])


def test_cv_folds_are_disjoint_and_cover_the_pool() -> None:
    config = load_config(None, FAST)
    folds = fold_assignments(config, 5)
    held_out = np.concatenate([f["val"] for f in folds])
    assert len(held_out) == len(set(held_out.tolist())) == 1797
    for fold in folds:
        assert not set(fold["train"].tolist()) & set(fold["val"].tolist())


def test_cv_logs_a_parent_with_one_child_per_fold(tmp_path: Path) -> None:
    import mlflow

    config = load_config(None, [*FAST, "model.name=mlp", "tracking.enabled=true"])
    result = cross_validate(config, 2, tmp_path / "cv", progress=False)
    assert len(result.folds) == 2 and 0 <= result.mean["accuracy"] <= 1
    rows = list(csv.DictReader((tmp_path / "cv" / "cv.csv").open()))
    assert [r["fold"] for r in rows] == ["1", "2", "mean", "std"]
    assert (tmp_path / "cv" / "cv.png").stat().st_size > 0
    assert not (tmp_path / "cv" / "mlflow.db").exists()  # one store for every run
    client = mlflow.MlflowClient(f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}")
    runs = client.search_runs(client.get_experiment_by_name("seglab").experiment_id)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(children) == 2
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.metrics["accuracy_mean"] == pytest.approx(result.mean["accuracy"])


def test_cli_trains_on_digits_and_predicts_classes(tmp_path: Path) -> None:
    def seglab(*args: str) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "seglab", *args], capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, completed.stderr

    run = tmp_path / "run"
    seglab(
        "train",
        "--task",
        "classification",
        "--data",
        "digits",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--no-track",
        "--no-progress",
        "--out",
        str(run),
    )
    bundle = run / "model"
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        Image.fromarray(np.full((16, 16), index * 80, np.uint8)).save(images / f"{index}.png")
    out = tmp_path / "pred"
    seglab("predict", "--model", str(bundle), str(images), "--out", str(out))
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 3
    probabilities = [float(rows[0][f"p_{k}"]) for k in range(10)]
    assert sum(probabilities) == pytest.approx(1, abs=1e-4)
    assert rows[0]["class"] == str(int(np.argmax(probabilities)))
    assert load_predictor(bundle).class_names == [str(k) for k in range(10)]
    # The one `seglab evaluate` scores classifiers too: the test split of the run's own splits
    # is not a folder here, so digits' only split ("all") is scored.
    scored = tmp_path / "eval"
    seglab("evaluate", "--model", str(bundle), "--data", "digits", "--out", str(scored))
    metrics = json.loads((scored / "metrics.json").read_text())
    per_image = list(csv.DictReader((scored / "per_image.csv").open()))
    assert metrics["n_images"] == len(per_image) == 1797
    correct = sum(int(row["correct"]) for row in per_image)
    assert metrics["accuracy"] == pytest.approx(correct / 1797)
    assert (scored / "confusion_matrix.png").is_file() and (scored / "report.html").is_file()
