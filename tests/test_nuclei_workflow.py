"""Nuclei instance workflow: DSB metrics in evaluate, RLE submissions, baselines, boundary
target, U-Net extended and `compare`, on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_MODEL, tiny_overrides
from seglab.bundle import read_metadata
from seglab.config import load_config
from seglab.errors import DataError
from seglab.evaluation.segmentation import evaluate
from seglab.inference.files import predict_files
from seglab.inference.loading import load_predictor
from seglab.rle import read_submission, rle_decode
from seglab.training.run import train


@pytest.fixture(scope="module")
def nuclei64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic 64x64 nuclei images (dsb2018 layout, train/val/test)."""
    from seglab.data.synthetic import write_synthetic

    out = tmp_path_factory.mktemp("nuclei64") / "data"
    write_synthetic("nuclei_simple", out, 12, size=64, seed=3)
    return out


def test_evaluate_otsu_by_name_reports_instance_metrics(nuclei64: Path, tmp_path: Path) -> None:
    result = evaluate("otsu", nuclei64, tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("dice", "dsb_map", "ap@0.5", "ap@0.75", "f1@0.5", "per_modality"):
        assert key in metrics, key
    assert 0 < metrics["dsb_map"] <= 1
    assert metrics["dsb_map"] == pytest.approx(result.metrics["dsb_map"])
    assert set(metrics["per_modality"]) <= {"fluorescence", "brightfield"}
    assert sum(v["n_images"] for v in metrics["per_modality"].values()) == metrics["n_images"]
    with (tmp_path / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"dsb_score", "ap@0.5", "modality"} <= set(rows[0])
    assert len(list((tmp_path / "instances").glob("*.png"))) == len(rows)
    assert (tmp_path / "per_threshold.csv").is_file()
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    facts = dict(re.findall(r"<div><b>([^<]+)</b>([^<]*)</div>", report))
    assert (facts["Data"], facts["Split"], facts["Model"]) == (str(nuclei64), "test", "otsu")
    assert facts["Images"] == str(len(rows)) and facts["Bundle"] == "—"  # a baseline has none
    assert "<h3>Instances (objects)</h3>" in report


def test_evaluate_without_masks_says_there_is_no_ground_truth(
    nuclei64: Path, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "stage1_test"
    shutil.copytree(nuclei64 / "test", unlabelled)
    for masks in unlabelled.glob("*/masks"):
        shutil.rmtree(masks)
    with pytest.raises(DataError, match="no ground truth"):
        evaluate("otsu", unlabelled, tmp_path / "eval", progress=False)
    predicted = predict_files(
        load_predictor("otsu"),
        [unlabelled],
        tmp_path / "pred",
        instances=True,
        rle=tmp_path / "sub.csv",
        progress=False,
    )
    assert len(predicted) == len(list(unlabelled.iterdir()))


def test_rle_submission_round_trips_the_label_images(nuclei64: Path, tmp_path: Path) -> None:
    images = sorted((nuclei64 / "test").glob("*/images/*.png"))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(blank)
    predict_files(
        load_predictor("otsu"),
        [*images, blank],
        tmp_path / "pred",
        instances=True,
        rle=tmp_path / "sub.csv",
        progress=False,
    )
    submission = read_submission(tmp_path / "sub.csv")
    assert submission["blank"] == []
    assert "blank,\n" in (tmp_path / "sub.csv").read_text()
    for image in images:
        labels = np.asarray(Image.open(tmp_path / "pred" / f"{image.stem}_labels.png"))
        rles = submission[image.stem]
        assert len(rles) == labels.max()
        for index, rle in enumerate(rles, start=1):
            assert np.array_equal(rle_decode(rle, labels.shape), labels == index)
        assert (tmp_path / "pred" / f"{image.stem}_outlines.png").is_file()


@pytest.mark.parametrize(
    ("extra", "channels", "outputs"),
    [
        (["data.target=boundary"], 3, ["foreground", "borders"]),
        (["model.name=unet_extended"], 9, ["foreground"]),
    ],
)
def test_variants_train_and_predict_instances(
    nuclei64: Path, tmp_path: Path, extra: list[str], channels: int, outputs: list[str]
) -> None:
    overrides = tiny_overrides(nuclei64, "train.epochs=1", *extra)
    result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    meta = read_metadata(result.bundle_path)
    assert meta["model"]["kwargs"]["in_channels"] == channels
    assert meta["outputs"] == outputs
    assert result.test_metrics is not None and "dsb_map" in result.test_metrics
    image = np.asarray(Image.open(sorted((nuclei64 / "test").glob("*/images/*.png"))[0]))
    prediction = load_predictor(result.bundle_path).predict(image, instances=True)
    assert prediction.instances is not None and prediction.instances.shape == image.shape[:2]


def test_compare_cli_writes_table_chart_and_nested_runs(nuclei64: Path, tmp_path: Path) -> None:
    import mlflow

    out = tmp_path / "cmp"
    sets = [arg for item in [*TINY_MODEL, "train.epochs=1"] for arg in ("--set", item)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "seglab",
            "compare",
            "--models",
            "otsu,unet",
            "--data",
            str(nuclei64),
            "--out",
            str(out),
            "--no-progress",
            *sets,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    with (out / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["otsu", "unet"]
    assert all(0 <= float(r["dsb_map"]) <= 1 for r in rows)
    assert "| model |" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").stat().st_size > 0
    assert not (out / "mlflow.db").exists()  # one store for every run of the runs folder
    client = mlflow.MlflowClient(f"sqlite:///{(out.parent / 'mlflow.db').resolve()}")
    runs = client.search_runs(client.get_experiment_by_name("seglab").experiment_id)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
