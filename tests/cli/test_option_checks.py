"""Options checked at the command line, and outputs that never overwrite one another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import seglab
from seglab.inference.files import output_stems


@pytest.mark.parametrize("threshold", ["nan", "5", "-1", "inf"])
def test_a_threshold_that_is_not_a_probability_is_refused(threshold: str, tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "a.png")
    args = ["predict", "--model", "otsu", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]
    result = seglab(*args, "--threshold", threshold, check=False)
    assert result.returncode == 2 and "not a probability" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_same_stem_files_in_one_folder_each_get_their_own_mask(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for suffix, value in ((".png", 40), (".tif", 220)):
        Image.fromarray(np.full((16, 16), value, np.uint8)).save(images / f"b{suffix}")
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(images / "c.png")
    out = tmp_path / "out"
    seglab("predict", "--model", "otsu", str(images), "--out", str(out))
    masks = sorted(p.name for p in out.glob("*_mask.png"))
    assert masks == ["c_mask.png", "images_b_png_mask.png", "images_b_tif_mask.png"]


def test_a_submission_with_two_images_of_one_id_is_refused_naming_both(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / folder / "x.png")
    args = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]
    sub = tmp_path / "sub.csv"
    result = seglab("predict", "--model", "otsu", *args, "--rle", str(sub), check=False)
    assert result.returncode == 2 and "ImageId 'x'" in result.stderr
    assert str(tmp_path / "a" / "x.png") in result.stderr.replace("\n", "")
    assert str(tmp_path / "b" / "x.png") in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr and not sub.exists()


def test_output_stems_are_unique_and_keep_unambiguous_stems() -> None:
    paths = [Path(p) for p in ("a/x.png", "b/x.png", "b/y.png", "b/y.tif", "b/z.png", "b/z.png")]
    stems = output_stems(paths)
    assert stems == ["a_x", "b_x", "b_y_png", "b_y_tif", "b_z_png_1", "b_z_png_2"]
    assert output_stems([Path("q/one.png"), Path("q/two.png")]) == ["one", "two"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["predict", "--model", "otsu", "x.png", "--out", "o", "--tile", "0"], "--tile"),
        (["predict", "--model", "otsu", "x.png", "--out", "o", "--tile", "-5"], "--tile"),
        (["predict", "--model", "otsu", "x.png", "--out", "o", "--overlap", "1"], "--overlap"),
        (["predict", "--model", "otsu", "x.png", "--out", "o", "--overlap", "-0.1"], "--overlap"),
        (["evaluate", "--model", "otsu", "--data", "d", "--out", "o", "--tile", "0"], "--tile"),
        (["serve", "--model", "otsu", "--port", "70000"], "--port"),
        (["serve", "--model", "otsu", "--max-upload-mb", "inf"], "--max-upload-mb"),
        (["plan", "--batch", "0"], "--batch"),
        (["data", "synth", "--size", "0", "--out", "o"], "--size"),
        (["data", "synth", "--n", "0", "--out", "o"], "--n"),
        (["cv", "--folds", "1", "--out", "o"], "--folds"),
        (["ui", "--port", "0"], "--port"),
    ],
)
def test_out_of_range_options_are_refused_before_any_work(
    args: list[str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from seglab.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and option in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.params.n_filters=100000", "n_filters"),
        ("data.crop=100000", "'data.crop': 100000×100000"),
    ],
)
def test_a_training_too_big_for_memory_is_refused_with_the_estimate(
    override: str, named: str, nuclei_dir: Path, tmp_path: Path
) -> None:
    args = ["train", "--data", str(nuclei_dir), "--out", str(tmp_path / "run"), "--no-track"]
    result = seglab(*args, "--set", override, check=False)
    assert result.returncode == 2 and "GiB is free" in result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_a_bundle_whose_model_is_too_big_is_refused_before_building_it(tmp_path: Path) -> None:
    import json

    from conftest import tiny_gray_unet_bundle

    bundle = tiny_gray_unet_bundle(tmp_path / "model")
    meta = json.loads((bundle / "seglab.json").read_text())
    meta["model"]["kwargs"]["n_filters"] = 100000
    (bundle / "seglab.json").write_text(json.dumps(meta))
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "a.png")
    result = seglab(
        "predict",
        "--model",
        str(bundle),
        str(tmp_path / "a.png"),
        "--out",
        str(tmp_path / "o"),
        check=False,
    )
    assert result.returncode == 2 and "seglab.json" in result.stderr
    assert "GiB is free" in result.stderr and "Traceback" not in result.stderr


def test_plan_measures_a_huge_patch_without_allocating_it() -> None:
    result = seglab("plan", "--patch", "100000,100000,100000", "--budget", "8GiB")
    assert "TiB" in result.stdout and "no" in result.stdout.splitlines()[-2]


def test_resume_with_a_config_file_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("train: {epochs: 3}\n")
    args = ["train", "--resume", str(tmp_path / "run"), "--config", str(config)]
    result = seglab(*args, check=False)
    assert result.returncode == 2 and "drop --config" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
