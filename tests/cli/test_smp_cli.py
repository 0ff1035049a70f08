"""`seglab train` and `seglab predict` with `model.name: smp`, in real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import SMP_MARKS, seglab

pytestmark = list(SMP_MARKS)

SMP_RESNET18 = ["--set", "model.name=smp", "--set", "model.params.encoder=resnet18"]
QUICK = ["--epochs", "1", "--no-progress", "--set", "tracking.enabled=false"]


def test_train_then_predict_instances_with_an_smp_unet(nuclei_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    boundary = ["--set", "data.target=boundary", "--set", "data.batch_size=4"]
    seglab("train", "--data", str(nuclei_dir), "--out", str(run), *QUICK, *SMP_RESNET18, *boundary)
    meta = json.loads((run / "model" / "seglab.json").read_text())
    kwargs = meta["model"]["kwargs"]
    assert (meta["model"]["name"], kwargs["arch"], kwargs["encoder"]) == ("smp", "Unet", "resnet18")
    assert kwargs["num_classes"] == 2  # foreground and borders
    assert kwargs["encoder_weights"] is None
    assert (kwargs["mean"], kwargs["std"]) == ([0.0] * 3, [1.0] * 3)

    out = tmp_path / "pred"
    images = sorted((nuclei_dir / "test").glob("*/images/*.png"))
    seglab("predict", "--model", str(run / "model"), str(nuclei_dir / "test"), "--out", str(out))
    masks = sorted(out.glob("*_mask.png"))
    assert len(masks) == len(images)
    assert np.asarray(Image.open(masks[0])).shape == (32, 32)


def test_pretrained_encoder_without_network_exits_2_saying_what_to_do(
    nuclei_dir: Path, tmp_path: Path
) -> None:
    # An empty hub cache, and the hub told it is offline: the download fails at once.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    pretrained = [*SMP_RESNET18, "--set", "model.params.encoder_weights=imagenet"]
    args = ["train", "--data", str(nuclei_dir), "--out", str(tmp_path / "run"), *QUICK, *pretrained]
    command = [sys.executable, "-m", "seglab", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "cannot fetch the pretrained encoder weights" in result.stderr
    assert "encoder_weights: null" in result.stderr
    assert "Traceback" not in result.stderr


def test_deeplab_with_batches_of_one_exits_2(nuclei_dir: Path, tmp_path: Path) -> None:
    deeplab = [*SMP_RESNET18, "--set", "model.params.arch=DeepLabV3Plus"]
    one = ["--set", "data.batch_size=1"]
    args = ["train", "--data", str(nuclei_dir), "--out", str(tmp_path / "run"), *QUICK, *deeplab]
    result = seglab(*args, *one, check=False)
    assert result.returncode == 2, result.stderr
    assert "data.batch_size of at least 2" in result.stderr
    assert "Traceback" not in result.stderr
