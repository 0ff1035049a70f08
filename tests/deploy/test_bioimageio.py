"""bioimage.io export: the zip is a valid current-format model that bioimageio.core runs, its
weights reproduce seglab's predictor, and `seglab predict --model model.zip` runs it."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from conftest import run_main, tiny_gray_unet_bundle
from seglab.data.transforms import normalize_image
from seglab.deploy.bioimageio import export_bioimageio
from seglab.inference.loading import load_predictor

BUNDLES = Path(__file__).parents[1] / "bundles"


@pytest.fixture(scope="module")
def bioimageio_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bioimage.io's download cache in a temporary folder (nothing is downloaded)."""
    from bioimageio.spec import settings

    cache = tmp_path_factory.mktemp("bioimageio-cache")
    previous = settings.cache_path
    settings.cache_path = cache
    yield cache
    settings.cache_path = previous


@pytest.fixture(scope="module", params=["scale", "percentile"])
def package(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(bundle, zip) of a tiny gray U-Net with the pre-processing given by the parameter."""
    folder = tmp_path_factory.mktemp(f"bioimageio-{request.param}")
    bundle = tiny_gray_unet_bundle(folder / "bundle")
    metadata = json.loads((bundle / "seglab.json").read_text())
    metadata["preprocessing"] |= {"normalize": request.param, "percentiles": [2.0, 99.5]}
    (bundle / "seglab.json").write_text(json.dumps(metadata))
    return bundle, export_bioimageio(bundle, folder / "model.zip").path


def test_the_zip_is_a_valid_model_of_the_current_format(
    package: tuple[Path, Path], bioimageio_cache: Path
) -> None:
    from bioimageio.spec import load_description
    from bioimageio.spec.model.v0_5 import ModelDescr

    descr = load_description(package[1])
    assert isinstance(descr, ModelDescr), descr.validation_summary.format()
    assert descr.format_version == ModelDescr.implemented_format_version
    assert descr.validation_summary.status in ("valid-format", "passed")
    assert not [d for d in descr.validation_summary.details if d.status == "failed"]
    assert [str(c.doi) for c in descr.cite] == ["10.1007/978-3-319-24574-4_28"]
    assert descr.license == "MIT"
    with zipfile.ZipFile(package[1]) as archive:
        assert {"seglab.json", "weights.safetensors"} <= set(archive.namelist())


def test_bioimageio_core_runs_both_weight_formats(
    package: tuple[Path, Path], bioimageio_cache: Path
) -> None:
    from bioimageio.core import test_model

    summary = test_model(package[1])
    assert summary.status == "passed", summary.format()
    tested = {str(loc) for detail in summary.details for loc in detail.loc}
    assert {"onnx", "torchscript"} <= tested


def test_the_zips_onnx_matches_seglabs_predictor_on_the_test_image(
    package: tuple[Path, Path],
) -> None:
    bundle, zip_path = package
    with zipfile.ZipFile(zip_path) as archive:
        raw = np.load(archive.open("test_input.npy"))
        stored = np.load(archive.open("test_output.npy"))
        graph = archive.read("model.onnx")
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    metadata = json.loads((bundle / "seglab.json").read_text())
    pre = metadata["preprocessing"]
    image = raw[0].transpose(1, 2, 0).astype(np.uint8)
    prepared = normalize_image(image, pre["normalize"], tuple(pre["percentiles"]))
    (actual,) = session.run(None, {"image": prepared.transpose(2, 0, 1)[None]})
    expected = load_predictor(bundle, backend="torch", precision="32").predict_channels(image)
    np.testing.assert_allclose(actual[0], expected, atol=1e-4)
    np.testing.assert_allclose(actual, stored, atol=1e-4)


def test_predict_with_the_zip_writes_the_bundles_masks(
    package: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, zip_path = package
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))
    with zipfile.ZipFile(zip_path) as archive:
        image = np.load(archive.open("test_input.npy"))[0, 0].astype(np.uint8)
    cv2.imwrite(str(tmp_path / "cell.png"), image)
    for model, out in ((bundle, "folder"), (zip_path, "zip")):
        args = ["predict", str(tmp_path / "cell.png"), "--model", str(model), "--no-progress"]
        assert run_main([*args, "--out", str(tmp_path / out)], monkeypatch) == 0
    folder_masks = sorted((tmp_path / "folder").rglob("*.png"))
    assert folder_masks
    for mask in folder_masks:
        from_zip = tmp_path / "zip" / mask.relative_to(tmp_path / "folder")
        assert np.array_equal(cv2.imread(str(mask)), cv2.imread(str(from_zip)))
    assert len(list((tmp_path / "cache").rglob("seglab.json"))) == 1


def test_the_cli_exports_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tiny_gray_unet_bundle(tmp_path / "bundle")
    args = ["export", "--format", "bioimageio", "--model", str(bundle)]
    assert run_main(args, monkeypatch) == 0
    assert (tmp_path / "bundle.bioimageio.zip").is_file()
    assert "bundle.bioimageio.zip" in "".join(capsys.readouterr().out.split())  # rich wraps
    assert not (bundle / "model.onnx").exists()  # the bundle itself is left as it was


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"views": ["raw", "hematoxylin"]}, "preprocessing.views"),
        ({"input_size": [64, 64]}, "preprocessing.input_size"),
    ],
)
def test_an_unsupported_bundle_is_one_clear_error(
    change: dict[str, object],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tiny_gray_unet_bundle(tmp_path / "bundle")
    metadata = json.loads((bundle / "seglab.json").read_text())
    metadata["preprocessing"] |= change
    (bundle / "seglab.json").write_text(json.dumps(metadata))
    args = ["export", "--format", "bioimageio", "--model", str(bundle), "--out", "m.zip"]
    assert run_main(args, monkeypatch) == 2
    assert named in capsys.readouterr().err
    assert not Path("m.zip").exists()


def test_a_volume_bundle_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.zip"
    args = ["export", "--format", "bioimageio", "--model", str(BUNDLES / "volumes")]
    assert run_main([*args, "--out", str(out)], monkeypatch) == 2
    assert "2D images only" in capsys.readouterr().err
    assert not out.exists()


def test_a_foreign_package_is_refused_by_predict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    shutil.copyfile(BUNDLES / "binary" / "input.npy", tmp_path / "x.npy")
    args = ["predict", str(tmp_path / "x.npy"), "--model", str(foreign), "--out", "o"]
    assert run_main(args, monkeypatch) == 2
    assert "not exported by seglab" in capsys.readouterr().err
