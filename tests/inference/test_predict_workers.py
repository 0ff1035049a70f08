"""`predict --workers N`: the same outputs as one process, from N processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import seglab
from seglab.bundle import make_metadata, save_bundle
from seglab.inference.files import predict_files
from seglab.inference.loading import load_predictor
from seglab.inference.parallel import PredictorSpec
from seglab.models import create_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": 1, "n_filters": 1, "depth": 2}
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    meta = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing={**preprocessing, "channels": 3, "views": ["raw"]},
        threshold=0.5,
        metrics={},
        config={},
    )
    return save_bundle(create_model("unet", **kwargs), meta, tmp_path_factory.mktemp("b") / "m")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(7):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(
            folder / f"im{index}.png"
        )
    return folder


def test_two_workers_write_what_one_process_writes(
    bundle: Path, images: Path, tmp_path: Path
) -> None:
    predictor = load_predictor(bundle, "cpu", "torch")
    # The untrained net's probabilities sit near one value: threshold at their median so the
    # masks are about half foreground and a difference would show.
    probabilities = predictor.predict_proba(np.asarray(Image.open(images / "im0.png")))
    spec = PredictorSpec(
        str(bundle), "torch", settings={"threshold": float(np.median(probabilities))}
    )
    predictor.threshold = spec.settings["threshold"]
    one = predict_files(predictor, [images], tmp_path / "one", progress=False, probabilities=True)
    two = predict_files(
        None, [images], tmp_path / "two", progress=False, probabilities=True, workers=2, load=spec
    )
    assert [r.source for r in two] == [r.source for r in one]  # input order kept
    assert [r.foreground_fraction for r in two] == [r.foreground_fraction for r in one]
    assert 0 < one[0].foreground_fraction < 1
    for result in one:
        for suffix in ("mask", "prob"):
            name = f"{result.source.stem}_{suffix}.png"
            a = np.asarray(Image.open(tmp_path / "one" / name))
            b = np.asarray(Image.open(tmp_path / "two" / name))
            assert np.array_equal(a, b), name


def test_workers_need_a_loader(images: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="load"):
        predict_files(None, [images], tmp_path, progress=False, workers=2)


def test_cli_predict_with_workers(bundle: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    shown = seglab(
        "predict", "--model", str(bundle), str(images), "--out", str(out), "--workers", "2",
        "--no-progress",
    )  # fmt: skip
    assert "wrote 7 masks" in shown.stdout
    assert len(list(out.glob("*_mask.png"))) == 7
