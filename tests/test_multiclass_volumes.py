"""Multi-class volumes: blobs3d classes, training, the bundle, prediction, evaluation, export."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from seglab.bundle import make_metadata, read_metadata
from seglab.cli.main import app
from seglab.config import load_config
from seglab.data.labels import index_mapping
from seglab.data.volumes import make_blobs3d, read_volume, write_blobs3d
from seglab.errors import ConfigError
from seglab.evaluation.volumes import LabelledVolume, evaluate_volume_samples
from seglab.inference.volumes import VolumePredictor, load_volume_predictor
from seglab.training.run import RunResult, train

CLASSES = 3
SIZE = 24
# A 3D U-Net small enough to train an epoch on 4 volumes of 24³ in seconds.
TINY = [
    "data.layout=volumes",
    f"data.num_classes={CLASSES}",
    "model.name=unet3d",
    "model.params={n_filters: 1, depth: 2}",
    "data.patch=[16,16,16]",
    "data.batch_size=2",
    "data.patches_per_volume=2",
    "train.epochs=1",
    "tracking.enabled=false",
]
NAMES = [f"class_{c}" for c in range(CLASSES)]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 volumes of 24³ with labels 0..2: 4 train, 2 val, 2 test."""
    out = tmp_path_factory.mktemp("volumes") / "blobs3"
    write_blobs3d(out, 8, size=SIZE, seed=0, splits=(0.5, 0.25, 0.25), classes=CLASSES)
    return out


@pytest.fixture(scope="module")
def run(blobs: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    config = load_config(None, [f"data.root={blobs}", *TINY])
    return train(config, tmp_path_factory.mktemp("runs") / "run", progress=False)


def invoke(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_blobs3d_classes_are_class_indices_and_deterministic() -> None:
    first = make_blobs3d(3, 32, seed=4, classes=4)
    again = make_blobs3d(3, 32, seed=4, classes=4)
    for (image, labels), (image2, labels2) in zip(first, again):
        np.testing.assert_array_equal(image, image2)
        np.testing.assert_array_equal(labels, labels2)
    values = np.unique(np.concatenate([labels.ravel() for _, labels in first]))
    assert values.tolist() == [0, 1, 2, 3]


def test_blobs3d_class_is_the_blob_size() -> None:
    sizes: dict[int, list[int]] = {1: [], 2: []}
    for _, labels in make_blobs3d(6, 64, seed=0, classes=3):
        for c in sizes:
            components, _ = ndimage.label(labels == c)
            sizes[c] += np.bincount(components.ravel())[1:].tolist()
    assert len(sizes[1]) >= 5 and len(sizes[2]) >= 5
    # Radii 4-8 voxels against 8-12: the median blob of class 2 is several times larger.
    assert np.median(sizes[2]) > 2 * np.median(sizes[1])


def test_blobs3d_binary_default_is_unchanged() -> None:
    # (largest object number, foreground voxels, sum of the image) recorded before --classes.
    summary = [
        (int(labels.max()), int(np.count_nonzero(labels)), int(image.astype(np.int64).sum()))
        for image, labels in make_blobs3d(2, SIZE, seed=0)
    ]
    assert summary == [(7, 723, 525977), (5, 594, 504221)]


def test_blobs3d_needs_two_classes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 classes"):
        make_blobs3d(1, 16, classes=1)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        write_blobs3d(tmp_path / "b", 2, size=16, classes=1)
    assert not (tmp_path / "b").exists()


def test_cli_synth_blobs3d_classes(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    invoke(
        "data",
        "synth",
        "--kind",
        "blobs3d",
        "--classes",
        2,
        "--n",
        2,
        "--size",
        16,
        "--out",
        out,
        "--no-split",
    )
    labels = read_volume(out / "labels" / "blobs3d_0000.tif").data
    assert labels.shape == (16, 16, 16) and set(np.unique(labels).tolist()) == {0, 1}
    result = CliRunner().invoke(
        app, ["data", "synth", "--kind", "nuclei", "--classes", "3", "--out", str(tmp_path / "n")]
    )
    assert isinstance(result.exception, ConfigError) and "blobs3d" in str(result.exception)


def test_training_records_a_multiclass_volume_bundle(run: RunResult) -> None:
    meta = read_metadata(run.bundle_path)
    assert meta["task"] == "multiclass" and meta["spatial_dims"] == 3
    assert meta["num_classes"] == CLASSES and meta["model"]["kwargs"]["num_classes"] == CLASSES
    assert meta["class_names"] == NAMES and meta["outputs"] == NAMES
    assert meta["labels"]["names"] == NAMES and meta["labels"]["ignore_index"] == 255
    assert meta["labels"]["palette"] == index_mapping(CLASSES).to_dict()["palette"]
    assert meta["config"]["loss"]["name"] == "ce_dice"
    assert set(meta["metrics"]["val"]["per_class"]) == set(NAMES)
    with (run.run_dir / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and 0 <= float(rows[0]["val_miou"]) <= 1
    assert not (run.run_dir / "threshold.png").exists()  # argmax: no threshold tuned
    for split, n in (("val", 2), ("test", 2)):
        folder = run.run_dir / "eval" / split
        metrics = json.loads((folder / "metrics.json").read_text())
        assert 0 <= metrics["miou"] <= 1 and metrics["n_images"] == n
        assert list(metrics["per_class"]) == NAMES
        assert all({"dice", "iou"} <= set(scores) for scores in metrics["per_class"].values())
        for name in ("per_image.csv", "report.html", "confusion_matrix.csv"):
            assert (folder / name).is_file(), name
    assert run.test_metrics is not None and run.test_metrics["tile"] == [16, 16, 16]
    assert (run.run_dir / "eval" / "test" / "panels" / "blobs3d_0006.png").is_file()


def test_predict_writes_class_index_volumes(run: RunResult, blobs: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    invoke(
        "predict",
        "--model",
        run.bundle_path,
        blobs / "test" / "images",
        "--out",
        out,
        "--probabilities",
        "--precision",
        "32",
    )
    volume = read_volume(blobs / "test" / "images" / "blobs3d_0006.tif").data
    predictor = load_volume_predictor(
        run.bundle_path, device="cpu", backend="torch", precision="32"
    )
    channels = predictor.predict_channels(volume)
    mask = read_volume(out / "blobs3d_0006_mask.tif").data
    assert mask.shape == (SIZE,) * 3 and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, channels.argmax(0))
    assert predictor.predict(volume).mask.dtype == np.uint8
    probabilities = read_volume(out / "blobs3d_0006_prob.tif").data
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, channels.max(0), atol=1e-6)
    assert probabilities.min() >= 1 / CLASSES - 1e-6  # the winner of 3 has at least 1/3
    assert sorted(p.name for p in out.iterdir()) == [
        f"blobs3d_000{i}_{kind}.tif" for i in (6, 7) for kind in ("mask", "prob")
    ]


def test_cli_evaluate_writes_miou_and_per_class(
    run: RunResult, blobs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    output = invoke("evaluate", "--model", run.bundle_path, "--data", blobs, "--out", out)
    assert "miou" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["per_class"]) == NAMES and metrics["n_images"] == 2
    # The training's test evaluation is the same computation on the same volumes.
    assert metrics["miou"] == pytest.approx(run.test_metrics["miou"])  # type: ignore[index]
    with (out / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["blobs3d_0006", "blobs3d_0007"]
    assert {f"iou_{n}" for n in NAMES} <= set(rows[0])
    assert "mIoU" in (out / "report.html").read_text()


def test_evaluation_by_hand_with_ignored_voxels(tmp_path: Path) -> None:
    def three_classes(batch: np.ndarray) -> np.ndarray:
        # Class 1 where the normalised input is above 0.5, class 0 elsewhere, never class 2.
        x = batch[:, :1]
        return np.concatenate([1 - x, x, np.zeros_like(x)], axis=1)

    meta = make_metadata(
        model_name="unet3d",
        model_kwargs={"in_channels": 1, "num_classes": 3, "n_filters": 1, "depth": 2},
        preprocessing={
            "normalize": "scale",
            "percentiles": [1, 99],
            "channels": 1,
            "tile": [2, 2, 2],
        },
        threshold=0.5,
        metrics={},
        config={},
        labels=index_mapping(3).to_dict(),
    )
    meta["spatial_dims"] = 3
    predictor = VolumePredictor(three_classes, meta)
    image = np.array([[[10, 200, 130, 120], [200, 10, 10, 200]]], np.uint8)
    truth = np.array([[[0, 1, 0, 1], [1, 255, 1, 255]]], np.int32)
    # Predicted [[0, 1, 1, 0], [1, 0, 0, 1]]; scored (truth not 255): t0 -> p0, p1; t1 -> p1,
    # p0, p1, p0. Class 0: tp 1, fp 2, fn 1; class 1: tp 2, fp 1, fn 2; class 2 absent.
    volume = LabelledVolume("v", tmp_path / "v.tif", image, truth)
    metrics = evaluate_volume_samples(predictor, [volume], tmp_path / "eval").metrics
    per_class = metrics["per_class"]
    assert per_class["class_0"]["iou"] == pytest.approx(1 / 4)
    assert per_class["class_0"]["dice"] == pytest.approx(2 / 5)
    assert per_class["class_1"]["iou"] == pytest.approx(2 / 5)
    assert per_class["class_1"]["dice"] == pytest.approx(4 / 7)
    assert per_class["class_2"]["iou"] is None  # in neither truth nor prediction: no score
    assert metrics["miou"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    matrix = list(csv.reader((tmp_path / "eval" / "confusion_matrix.csv").open()))
    assert [row[1:] for row in matrix[1:]] == [["1", "1", "0"], ["2", "2", "0"], ["0", "0", "0"]]
    assert (tmp_path / "eval" / "panels" / "v.png").is_file()


def test_export_of_a_multiclass_volume_bundle_has_parity(run: RunResult, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(run.bundle_path, tmp_path / "model"))
    output = invoke("export", "--model", bundle)
    assert "parity with torch" in output
    onnx = read_metadata(bundle)["onnx"]
    assert onnx["dynamic_axes"] == ["batch", "depth", "height", "width"]
    assert onnx["max_abs_diff"] <= 1e-4  # the parity check of the softmax outputs ran
    volume = np.random.default_rng(0).integers(0, 256, (21, 19, 23), dtype=np.uint8)
    on_torch = load_volume_predictor(bundle, backend="torch", precision="32").predict(volume)
    on_onnx = load_volume_predictor(bundle, backend="onnx").predict(volume)
    assert on_onnx.probabilities.shape == (CLASSES, 21, 19, 23)
    np.testing.assert_allclose(on_onnx.probabilities, on_torch.probabilities, atol=1e-4)
    assert on_onnx.mask.dtype == np.uint8 and np.mean(on_onnx.mask == on_torch.mask) > 0.99


def test_a_label_mapping_file_is_refused_for_volumes(blobs: Path, tmp_path: Path) -> None:
    config = load_config(None, [f"data.root={blobs}", *TINY[:1], "data.labels=classes.yaml"])
    with pytest.raises(ConfigError, match="class indices"):
        train(config, tmp_path / "run", progress=False)
