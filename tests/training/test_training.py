"""Training: the run folder contract, reproducibility, resume, bad data, tracking."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import RUN_FOLDER_FILES, tiny_overrides
from seglab.bundle import load_bundle, read_metadata
from seglab.config import load_config
from seglab.errors import SeglabError
from seglab.inference import Predictor
from seglab.training.run import resume, train


def test_train_writes_the_run_folder(nuclei_dir: Path, tmp_path: Path) -> None:
    result = train(load_config(None, tiny_overrides(nuclei_dir)), tmp_path / "run", progress=False)
    run = result.run_dir
    for name in RUN_FOLDER_FILES:
        assert (run / name).is_file(), name
    with (run / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_dice"]) <= 1 for r in rows)
    splits = json.loads((run / "splits.json").read_text())
    assert splits["layout"] == "dsb2018"
    assert {len(splits[s]) for s in ("train", "val", "test")} <= set(range(1, 20))
    meta = read_metadata(result.bundle_path)
    assert 0.05 <= meta["threshold"] <= 0.95
    assert meta["threshold"] == result.threshold
    assert meta["config"]["train"]["epochs"] == 2
    assert meta["metrics"]["val"]["dice"] == pytest.approx(result.val_metrics["dice"])
    assert result.test_metrics is not None and 0 <= result.test_metrics["dice"] <= 1


def test_same_seed_same_metrics(nuclei_dir: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    first = train(load_config(None, overrides), tmp_path / "a", progress=False)
    second = train(load_config(None, overrides), tmp_path / "b", progress=False)
    assert first.val_metrics == second.val_metrics
    a, _ = load_bundle(first.bundle_path)
    b, _ = load_bundle(second.bundle_path)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(x.numpy(), y.numpy()), name


def test_resume_continues_from_last_checkpoint(nuclei_dir: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    run = train(load_config(None, overrides), tmp_path / "run", progress=False).run_dir
    resume(run, ["train.epochs=2"], progress=False)
    with (run / "train_log.csv").open() as handle:
        epochs = [r["epoch"] for r in csv.DictReader(handle)]
    assert epochs == ["1", "2"]  # whole numbers, also for the epochs written before the resume
    assert load_config(run / "config.yaml").train.epochs == 2


def test_resume_of_a_finished_run_is_refused_and_keeps_its_config(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    run = train(load_config(None, overrides), tmp_path / "run", progress=False).run_dir
    before = (run / "config.yaml").read_text()
    with pytest.raises(SeglabError, match="has trained 1 epochs.*N > 1"):
        resume(run, ["train.epochs=1", "train.lr=0.5"], progress=False)
    assert (run / "config.yaml").read_text() == before
    (run / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SeglabError, match="last.ckpt: not a readable training checkpoint"):
        resume(run, ["train.epochs=3"], progress=False)
    assert (run / "config.yaml").read_text() == before


def test_existing_run_folder_is_not_overwritten(nuclei_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(SeglabError, match="not a seglab run folder.*another --out"):
        train(load_config(None, tiny_overrides(nuclei_dir)), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "config.yaml").read_text() == "seed: 0\n"


def test_bundle_round_trip_gives_identical_outputs(nuclei_dir: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    model, meta = load_bundle(result.bundle_path)
    image = np.random.default_rng(0).integers(0, 255, (45, 37, 3), dtype=np.uint8)
    first = Predictor(model, meta, "cpu").predict_proba(image)
    again = Predictor.from_bundle(result.bundle_path, "cpu").predict_proba(image)
    assert first.shape == (45, 37)
    assert np.array_equal(first, again)


def test_tracking_logs_params_metrics_and_artifacts(nuclei_dir: Path, tmp_path: Path) -> None:
    import mlflow

    overrides = tiny_overrides(
        nuclei_dir, "train.epochs=2", "tracking.enabled=true", "tracking.experiment=test-exp"
    )
    result = train(load_config(None, overrides), tmp_path / "runs" / "r1", progress=False)
    run_id = json.loads((result.run_dir / "mlflow_run.json").read_text())["run_id"]
    assert (tmp_path / "runs" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}")
    run = client.get_run(run_id)
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["model.name"] == "unet"
    history = client.get_metric_history(run_id, "val_loss")
    assert len(history) == 2
    assert run.data.metrics["threshold"] == pytest.approx(result.threshold)
    assert run.data.metrics["val_dice"] == pytest.approx(result.val_metrics["dice"])
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "curves.png", "model"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(run_id, "model")}
    assert "model/weights.safetensors" in model_files


def test_a_tracking_store_that_fails_mid_run_does_not_stop_training(
    nuclei_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mlflow

    calls = []
    real_log_batch = mlflow.MlflowClient.log_batch

    def dies_after_the_first_epoch(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("tracking server went away")
        return real_log_batch(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", dies_after_the_first_epoch)
    overrides = tiny_overrides(nuclei_dir, "train.epochs=3", "tracking.enabled=true")
    with caplog.at_level("WARNING", logger="seglab.training.tolerant_logger"):
        result = train(load_config(None, overrides), tmp_path / "runs" / "r1", progress=False)
    assert result.bundle_path.joinpath("weights.safetensors").is_file()
    with (result.run_dir / "train_log.csv").open() as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["1", "2", "3"]
    warnings = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(warnings) == 1 and "went away" in warnings[0] and "train_log.csv" in warnings[0]
    assert len(calls) == 2  # no write is tried once the store has failed


def test_bad_sample_stops_training_or_is_skipped(tmp_path: Path) -> None:
    from PIL import Image

    from seglab.data.synthetic import write_synthetic
    from seglab.errors import DataError

    data = tmp_path / "circles"
    write_synthetic("circles", data, 12, size=32, seed=0, splits=None)
    bad_mask = sorted((data / "masks").glob("*.png"))[0]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad_mask)
    overrides = tiny_overrides(data, "train.epochs=1", "train.evaluate_test=false")
    with pytest.raises(DataError, match=bad_mask.name):
        train(load_config(None, overrides), tmp_path / "strict", progress=False)
    result = train(
        load_config(None, [*overrides, "data.skip_bad=true"]), tmp_path / "skip", progress=False
    )
    skipped = json.loads((result.run_dir / "skipped.json").read_text())
    assert [Path(s["path"]).name for s in skipped] == [bad_mask.name]


@pytest.mark.slow
def test_compile_is_opt_in_reports_its_time_and_keeps_plain_bundles(
    nuclei_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = tiny_overrides(
        nuclei_dir, "train.epochs=1", "train.evaluate_test=false", "train.compile=true"
    )
    with caplog.at_level("INFO", logger="seglab"):
        result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    reports = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(reports) == 1 and "first step" in reports[0]
    model, _ = load_bundle(result.bundle_path)  # a plain module: no "_orig_mod." in the keys
    assert not any("_orig_mod" in key for key in model.state_dict())
    assert 0 <= result.val_metrics["dice"] <= 1


@pytest.mark.usefixtures("native_bf16")
def test_auto_precision_trains_in_bf16_on_a_bf16_cpu(
    nuclei_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    with caplog.at_level("INFO", logger="seglab"):
        result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    assert "training on cpu in precision bf16-mixed" in caplog.text
    assert load_config(result.run_dir / "config.yaml").train.precision == "auto"
    assert np.isfinite(result.val_metrics["dice"])


def test_max_steps_may_end_an_epoch_early_with_early_stopping_on(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    # 14 training images in batches of 4 make 4 steps an epoch: 2 steps stop mid-epoch, before
    # any validation loss exists for the early-stopping callback.
    overrides = tiny_overrides(nuclei_dir, "train.max_steps=2", "train.patience=3")
    result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert result.bundle_path.is_dir() and 0 <= result.val_metrics["dice"] <= 1
