"""ONNX export: parity with torch for every segmentation model, the torch-free ONNX Runtime path,
backend selection, and the errors a user can cause."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import seglab.deploy.export
from conftest import SMP_TINY, model_params
from seglab.baseline import create_baseline
from seglab.bundle import (
    WEIGHTS,
    file_sha256,
    load_bundle,
    make_metadata,
    read_metadata,
    save_bundle,
)
from seglab.deploy.export import export_onnx
from seglab.errors import BundleError, SeglabError
from seglab.inference.loading import load_predictor
from seglab.inference.onnx_backend import OnnxPredictor
from seglab.inference.predictor import Predictor
from seglab.models import (
    MODELS,
    create_model,
    model_parameters,
    model_spatial_dims,
    model_task,
)

# ONNX export is of 2D models: `(N, C, H, W)` images with dynamic height and width.
SEGMENTATION_MODELS = model_params(
    [n for n in MODELS if model_task(n) == "segmentation" and model_spatial_dims(n) == 2]
)
# The extended U-Net is fed three views of an RGB image, hence 9 input channels.
VIEWS = {"unet_extended": ["raw", "clahe", "invert"]}
TINY = {"num_classes": 1, "n_filters": 1, "depth": 2}
PREPROCESSING = {"normalize": "scale", "percentiles": [1, 99], "input_size": None, "channels": 3}
REST: dict[str, Any] = {"threshold": 0.5, "metrics": {}, "config": {}}


def make_bundle(path: Path, name: str, seed: int = 0, **kwargs: object) -> Path:
    views = VIEWS.get(name, ["raw"])
    tiny = {k: v for k, v in TINY.items() if k in model_parameters(name)}
    model_kwargs = {"in_channels": 3 * len(views), **tiny, **(SMP_TINY if name == "smp" else {})}
    model_kwargs |= kwargs
    torch.manual_seed(seed)
    model = create_model(name, **model_kwargs)
    with torch.no_grad():
        # At PyTorch's default init a tiny U-Net's probabilities all lie within ~0.001 of one
        # value; 2.5x weights spread them (std ~0.07) so masks and parity say something. (A
        # ResNet encoder's probabilities spread by themselves, std ~0.02; scaled they saturate.)
        for module in model.modules() if "n_filters" in tiny else ():
            if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                module.weight.mul_(2.5)
    preprocessing = {**PREPROCESSING, "views": views}
    meta = make_metadata(
        model_name=name, model_kwargs=model_kwargs, preprocessing=preprocessing, **REST
    )
    return save_bundle(model, meta, path)


@pytest.fixture(scope="module", params=SEGMENTATION_MODELS)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of each segmentation model, exported once for the tests below."""
    path = make_bundle(tmp_path_factory.mktemp("bundles") / request.param, request.param)
    # The seglab.json before export, to check that export only adds the "onnx" entry.
    (path.parent / f"{request.param}.before.json").write_text((path / "seglab.json").read_text())
    result = export_onnx(path)
    assert result.path == path / "model.onnx"
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    return path


def test_export_keeps_metadata_and_adds_onnx_entry(exported: Path) -> None:
    before = json.loads((exported.parent / f"{exported.name}.before.json").read_text())
    after = read_metadata(exported)
    assert {k: v for k, v in after.items() if k != "onnx"} == before
    assert after["onnx"]["file"] == "model.onnx"
    assert after["onnx"]["opset"] == 18
    assert after["onnx"]["max_abs_diff"] <= 1e-4
    proto = onnx.load(str(exported / "model.onnx"))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    # No leftover temporary file from the atomic write.
    assert sorted(p.name for p in exported.iterdir()) == [
        "model.onnx",
        "seglab.json",
        "weights.safetensors",
    ]


@pytest.mark.parametrize("shape", [(1, 45, 61), (3, 17, 5), (2, 64, 32), (1, 1, 1)])
def test_graph_has_dynamic_batch_height_and_width(exported: Path, shape: tuple[int, ...]) -> None:
    model, meta = load_bundle(exported)
    batch, height, width = shape
    image = torch.rand(batch, meta["in_channels"], height, width)
    with torch.inference_mode():
        expected = torch.sigmoid(model(image)).numpy()
    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    (actual,) = session.run(["probabilities"], {"image": image.numpy()})
    assert actual.shape == (batch, 1, height, width)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4)


def test_onnx_predictor_matches_torch_predictor(exported: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    onnx_predictor = OnnxPredictor.from_bundle(exported, threads=1)
    torch_predictor = Predictor.from_bundle(exported, device="cpu", precision="32")
    onnx_proba = onnx_predictor.predict_proba(image)
    torch_proba = torch_predictor.predict_proba(image)
    assert onnx_proba.shape == (45, 61)
    np.testing.assert_allclose(onnx_proba, torch_proba, rtol=0, atol=1e-4)

    # The median as threshold puts half the pixels on each side; only those within the
    # tolerance of it may flip.
    cut = float(np.median(torch_proba))
    onnx_mask = onnx_predictor.predict(image, threshold=cut).mask
    torch_mask = torch_predictor.predict(image, threshold=cut).mask
    ambiguous = np.abs(torch_proba - cut) <= 1e-4
    assert ambiguous.mean() < 0.05
    assert np.array_equal(onnx_mask[~ambiguous], torch_mask[~ambiguous])
    assert 0 < torch_mask.sum() < torch_mask.size


@pytest.mark.usefixtures("no_native_bf16")
def test_load_predictor_auto_picks_onnx_only_when_exported(exported: Path, tmp_path: Path) -> None:
    assert isinstance(load_predictor(exported), OnnxPredictor)
    assert isinstance(load_predictor(exported, backend="torch"), Predictor)
    plain = make_bundle(tmp_path / "plain", "unet")
    assert isinstance(load_predictor(plain), Predictor)


def test_onnx_of_other_weights_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "a", "unet")
    export_onnx(bundle, check=False)
    assert read_metadata(bundle)["onnx"]["weights_sha256"] == file_sha256(bundle / WEIGHTS)
    other = make_bundle(tmp_path / "b", "unet_mini")
    export_onnx(other, check=False)
    shutil.copy(other / "model.onnx", bundle / "model.onnx")
    with pytest.raises(BundleError, match=r"model.onnx: differs from the file `seglab export`"):
        OnnxPredictor.from_bundle(bundle)
    export_onnx(bundle, check=False)
    (bundle / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())
    with pytest.raises(BundleError, match=r"weights.safetensors: differs"):
        OnnxPredictor.from_bundle(bundle)


def test_batch_norm_and_bilinear_variant_exports_with_parity(tmp_path: Path) -> None:
    path = make_bundle(tmp_path / "b", "unet", depth=3, batch_norm=True, bilinear=True)
    model, meta = load_bundle(path)
    # Fresh running statistics (mean 0, variance 1) would make batch norm an identity.
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean = torch.randn(module.num_features, generator=generator)
            module.running_var = torch.rand(module.num_features, generator=generator) + 0.5
    save_bundle(model, meta, path)
    result = export_onnx(path)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        OnnxPredictor.from_bundle(path).predict_proba(image),
        Predictor.from_bundle(path, device="cpu", precision="32").predict_proba(image),
        rtol=0,
        atol=1e-4,
    )


def _run_without_torch(code: str) -> None:
    """Run `code` in a fresh interpreter; it fails if torch got imported."""
    script = textwrap.dedent(code) + '\nassert "torch" not in sys.modules, "torch was imported"\n'
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_onnx_backend_module_imports_no_torch(exported: Path) -> None:
    _run_without_torch(
        f"""
        import json, sys
        import numpy as np
        import onnxruntime as ort
        from seglab.inference.onnx_backend import OnnxPredictor, session_options

        folder = {str(exported)!r}
        session = ort.InferenceSession(folder + "/model.onnx", session_options(1))
        metadata = json.load(open(folder + "/seglab.json"))
        image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
        assert OnnxPredictor(session, metadata).predict(image).mask.shape == (45, 61)
        """
    )


def test_load_predictor_onnx_backend_imports_no_torch(exported: Path) -> None:
    _run_without_torch(
        f"""
        import sys
        import numpy as np
        from seglab.inference.loading import load_predictor

        predictor = load_predictor({str(exported)!r}, backend="onnx")
        image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
        assert predictor.predict(image).mask.shape == (45, 61)
        """
    )


def test_missing_onnx_file_with_onnx_backend_says_to_export(tmp_path: Path) -> None:
    plain = make_bundle(tmp_path / "plain", "unet")
    with pytest.raises(BundleError, match="seglab export --model"):
        load_predictor(plain, backend="onnx")


def test_classification_bundle_cannot_be_exported(tmp_path: Path) -> None:
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": [8, 8]}
    meta = make_metadata(model_name="cnn", model_kwargs=kwargs, preprocessing={}, **REST)
    meta["task"] = "classification"
    path = save_bundle(create_model("cnn", **kwargs), meta, tmp_path / "digits")
    with pytest.raises(SeglabError, match="classification export is not supported"):
        export_onnx(path)
    assert not (path / "model.onnx").exists()


def test_baseline_cannot_be_exported(tmp_path: Path) -> None:
    (tmp_path / "otsu").mkdir()
    (tmp_path / "otsu" / "seglab.json").write_text(json.dumps(create_baseline("otsu").metadata))
    with pytest.raises(SeglabError, match="baseline"):
        export_onnx(tmp_path / "otsu")


def test_old_opset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SeglabError, match="opset >= 18"):
        export_onnx(make_bundle(tmp_path / "b", "unet"), opset=17)


def test_failed_parity_check_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_bundle(tmp_path / "b", "unet")
    before = (path / "seglab.json").read_text()
    # A negative tolerance makes any graph fail, as a wrong exporter would.
    monkeypatch.setattr(seglab.deploy.export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(SeglabError, match=r"max abs difference of probabilities \d"):
        export_onnx(path)
    assert sorted(p.name for p in path.iterdir()) == ["seglab.json", "weights.safetensors"]
    assert (path / "seglab.json").read_text() == before


def test_exporter_failure_names_model_and_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(SeglabError, match="model 'unet'.*aten::frobnicate"):
        export_onnx(make_bundle(tmp_path / "b", "unet"))
    assert not (tmp_path / "b" / "model.onnx").exists()


def test_unet3d_exports_with_dynamic_depth_and_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "num_classes": 1, "n_filters": 1, "depth": 2}
    preprocessing = {**PREPROCESSING, "channels": 1, "views": ["raw"], "tile": 32}
    meta = make_metadata(
        model_name="unet3d",
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        **REST,
    )
    meta["spatial_dims"] = 3
    bundle = save_bundle(create_model("unet3d", **kwargs), meta, tmp_path / "b3d")
    result = export_onnx(bundle)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert read_metadata(bundle)["onnx"]["dynamic_axes"] == ["batch", "depth", "height", "width"]
    volume = np.random.default_rng(0).integers(0, 256, (21, 19, 23), dtype=np.uint8)
    on_torch = load_predictor(bundle, backend="torch", precision="32").predict(volume)
    on_onnx = load_predictor(bundle, backend="onnx").predict(volume)
    assert on_onnx.probabilities.shape == volume.shape
    np.testing.assert_allclose(on_onnx.probabilities, on_torch.probabilities, atol=1e-4)
