"""Tests of seglab.inference.volumes and seglab.evaluation.volumes: pre-processing, sliding-window
prediction from a bundle (torch and ONNX Runtime), metrics, slice figures and the report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seglab.bundle import make_metadata, save_bundle
from seglab.data.volumes import read_volume, write_blobs3d, write_volume
from seglab.errors import BundleError, ConfigError, DataError
from seglab.evaluation.volumes import evaluate_volumes, orthogonal_slices, volume_counts
from seglab.inference.volumes import (
    VolumePredictor,
    collect_volumes,
    load_volume_predictor,
    predict_volume,
    predict_volume_files,
    prepare_volume,
)
from seglab.models import create_model
from seglab.models.padding import pad_end
from seglab.viz import MASK_COLOR

TILE = [8, 8, 8]


def metadata(tile: list[int] = TILE, num_classes: int = 1, **extra: Any) -> dict[str, Any]:
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "channels": 1, "tile": tile}
    meta = make_metadata(
        model_name="unet3d",
        model_kwargs={"in_channels": 1, "num_classes": num_classes, "n_filters": 1, "depth": 2},
        preprocessing=preprocessing,
        threshold=0.5,
        metrics={},
        config={},
    )
    meta["spatial_dims"] = 3
    if num_classes > 1:
        meta["task"] = "multiclass"
    meta.update(extra)
    return meta


def first_channel(batch: np.ndarray) -> np.ndarray:
    """A stand-in model: channel 0 of the input is its "probability"."""
    return batch[:, :1].copy()


def make_bundle(path: Path, tile: list[int] = TILE) -> Path:
    meta = metadata(tile)
    torch.manual_seed(0)
    model = create_model("unet3d", **meta["model"]["kwargs"])
    with torch.no_grad():  # spread the probabilities of a freshly initialised tiny model
        for module in model.modules():
            if isinstance(module, torch.nn.Conv3d | torch.nn.ConvTranspose3d):
                module.weight.mul_(2.5)
    return save_bundle(model, meta, path)


def test_prepare_volume_scales_and_moves_channels_first() -> None:
    volume = np.array([[[0, 51], [102, 255]]], np.uint8)  # (1, 2, 2)
    data = prepare_volume(volume, channels=1)
    # "scale": value / 255, so 51 -> 0.2 and 102 -> 0.4.
    np.testing.assert_allclose(data, [[[[0.0, 0.2], [0.4, 1.0]]]], rtol=1e-6)
    assert data.dtype == np.float32 and data.flags.c_contiguous
    rgb = np.stack([volume, volume // 3, np.zeros_like(volume)], axis=-1)  # (1, 2, 2, 3)
    gray = prepare_volume(rgb, channels=1)
    # RGB averaged: (255 + 85 + 0) / 3 = 113.33 -> uint8 113 -> 113 / 255.
    assert gray.shape == (1, 1, 2, 2)
    assert gray[0, 0, 1, 1] == pytest.approx(113 / 255, rel=1e-6)
    assert prepare_volume(volume, channels=2).shape == (2, 1, 2, 2)  # gray repeated
    with pytest.raises(ValueError, match="volume"):
        prepare_volume(np.zeros((4, 4)), channels=1)


def test_sliding_window_of_an_identity_model_returns_the_volume() -> None:
    # Every tile predicts the input itself, so the blend of overlapping tiles is the input again.
    volume = np.random.default_rng(0).integers(0, 256, (13, 20, 9), dtype=np.uint8)
    predictor = VolumePredictor(first_channel, metadata())
    probabilities, mask = predict_volume(predictor, volume)
    np.testing.assert_allclose(probabilities, volume / 255, atol=1e-6)
    np.testing.assert_array_equal(mask, probabilities >= 0.5)
    low = predictor.predict(volume, threshold=0.1).mask
    assert low.sum() > mask.sum()


def test_multiclass_prediction_is_the_argmax() -> None:
    def two_classes(batch: np.ndarray) -> np.ndarray:
        x = batch[:, :1]
        return np.concatenate([1 - x, x], axis=1)

    volume = np.array([[[10, 200], [130, 120]]], np.uint8)
    predictor = VolumePredictor(two_classes, metadata([2, 2, 2], num_classes=2))
    prediction = predictor.predict(volume)
    assert predictor.multiclass and prediction.probabilities.shape == (2, 1, 2, 2)
    # 130 / 255 > 0.5 is class 1, 120 / 255 < 0.5 is class 0.
    assert prediction.mask.tolist() == [[[0, 1], [1, 0]]]
    np.testing.assert_allclose(predictor.predict_proba(volume), volume / 255, atol=1e-6)


def test_tta_averages_eight_flips() -> None:
    calls = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return first_channel(batch)

    predictor = VolumePredictor(counting, metadata())
    predictor.tta = True
    predictor.batch_size = 8
    volume = np.random.default_rng(1).integers(0, 256, (8, 8, 8), dtype=np.uint8)
    # One tile (the volume is the tile), 8 flips: 8 calls; identity is flip-equivariant.
    np.testing.assert_allclose(predictor.predict_proba(volume), volume / 255, atol=1e-6)
    assert calls == [1] * 8


def test_torch_bundle_matches_the_model_on_the_padded_volume(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "model", tile=[12, 12, 12])
    predictor = load_volume_predictor(bundle, device="cpu", backend="torch", precision="32")
    volume = np.random.default_rng(2).integers(0, 256, (10, 12, 7), dtype=np.uint8)
    probabilities = predictor.predict_proba(volume)
    # One tile: the volume is reflect-padded to 12³, predicted, and cropped back; the Gaussian
    # weights cancel out (weight / weight).
    model = create_model("unet3d", **predictor.metadata["model"]["kwargs"])
    model.load_state_dict(predictor_state(bundle))
    x = torch.from_numpy(prepare_volume(volume, 1))[None]
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(pad_end(x, [2, 0, 5])))[0, 0, :10, :12, :7]
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-5)
    assert probabilities.std() > 0.01  # the check says something only if outputs vary


def predictor_state(bundle: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(bundle / "weights.safetensors"))


@pytest.mark.usefixtures("no_native_bf16")  # "auto" picks ONNX Runtime only in fp32
def test_onnx_backend_matches_torch(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "model")
    torch_predictor = load_volume_predictor(bundle, device="cpu", backend="torch", precision="32")
    model = create_model("unet3d", **torch_predictor.metadata["model"]["kwargs"])
    model.load_state_dict(predictor_state(bundle))

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.model(image))

    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but quick
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Probabilities().eval(),
            (torch.rand(2, 1, *TILE),),
            str(bundle / "model.onnx"),
            dynamo=False,
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
        )
    onnx_predictor = load_volume_predictor(bundle, backend="auto")  # model.onnx is there
    volume = np.random.default_rng(3).integers(0, 256, (11, 14, 9), dtype=np.uint8)
    expected = torch_predictor.predict_proba(volume)
    np.testing.assert_allclose(onnx_predictor.predict_proba(volume), expected, atol=1e-4)


def test_2d_bundles_and_unknown_backends_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a volume model"):
        VolumePredictor(first_channel, {**metadata(), "spatial_dims": 2})
    flat = metadata()
    del flat["spatial_dims"]
    save_bundle(create_model("unet", n_filters=1, depth=2), flat, tmp_path / "flat")
    with pytest.raises(BundleError, match="not a volume bundle"):
        load_volume_predictor(tmp_path / "flat")
    bundle = make_bundle(tmp_path / "model")
    with pytest.raises(ConfigError, match="backend"):
        load_volume_predictor(bundle, backend="tensorrt")
    with pytest.raises(BundleError, match="model.onnx"):
        load_volume_predictor(bundle, backend="onnx")


def test_volume_counts_by_hand() -> None:
    truth = np.zeros((2, 2, 2), np.int32)
    truth[0, 0, :] = 1  # 2 true voxels
    prediction = np.zeros((2, 2, 2), bool)
    prediction[0, 0, 0] = prediction[1, 1, 1] = True
    # tp 1 (0,0,0); fp 1 (1,1,1); fn 1 (0,0,1); tn 8 - 3 = 5: one row for the whole volume.
    assert volume_counts(prediction, truth).tolist() == [[1, 1, 1, 5]]
    # Truth 255 at (1, 1, 1) is ignored: the false positive there no longer counts.
    truth[1, 1, 1] = 255
    assert volume_counts(prediction, truth, ignore_index=255).tolist() == [[1, 0, 1, 5]]


def test_orthogonal_slices_layout_by_hand() -> None:
    image = np.zeros((4, 6, 8), np.uint8)
    truth = np.zeros((4, 6, 8), bool)
    truth[2, 3, 4] = True  # the centroid: planes z = 2, y = 3, x = 4
    figure = orthogonal_slices(image, truth, truth)
    # Scale ceil(128 / 8) = 16. Rows: axial 6x8 -> 96x128, coronal 4x8 -> 64x128, sagittal
    # 4x6 -> 64x96. Width 3 * 128 + 2 gaps of 4 = 392; height 96 + 64 + 64 + 2 gaps of 4 = 232.
    assert figure.shape == (232, 392, 3) and figure.dtype == np.uint8
    # Axial row, second panel (truth overlay) starts at x = 128 + 4; voxel (y=3, x=4) is the
    # 16x16 block at rows 48..63, columns 132 + 64 .. 132 + 79: a one-voxel mask is all outline,
    # drawn in the full mask colour.
    assert figure[48 + 8, 132 + 64 + 8].tolist() == list(MASK_COLOR)
    assert figure[8, 132 + 8].tolist() == [0, 0, 0]  # the black image elsewhere


def test_evaluate_volumes_writes_metrics_table_figures_and_report(tmp_path: Path) -> None:
    write_blobs3d(tmp_path / "data", 3, size=12, seed=0, splits=None)
    bundle = make_bundle(tmp_path / "model")
    result = evaluate_volumes(bundle, tmp_path / "data", tmp_path / "eval", progress=False)
    out = tmp_path / "eval"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 3 and metrics["spatial_dims"] == 3
    assert 0 <= metrics["dice"] <= 1 and metrics["tile"] == TILE
    assert metrics["dice"] == pytest.approx(result.metrics["dice"])
    rows = (out / "per_image.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("id,shape,dice")
    # The micro Dice is that of the summed counts of the rows: 2 tp / (2 tp + fp + fn).
    tp, fp, fn = (sum(r[k] for r in result.per_image) for k in ("tp", "fp", "fn"))
    assert metrics["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert sorted(p.name for p in (out / "slices").iterdir()) == [
        f"blobs3d_000{i}.png" for i in range(3)
    ]
    report = (out / "report.html").read_text()
    assert "Orthogonal slices" in report and report.count("data:image/png;base64,") == 3


def test_predict_volume_files_writes_masks_with_spacing(tmp_path: Path) -> None:
    volume = np.array([[[0, 255], [200, 10]], [[90, 140], [255, 0]]], np.uint8)  # (2, 2, 2)
    write_volume(tmp_path / "in" / "a.tif", volume, (2.0, 0.5, 0.5))
    np.save(tmp_path / "in" / "b.npy", volume)
    (tmp_path / "in" / "notes.txt").write_text("not a volume")
    predictor = VolumePredictor(first_channel, metadata([2, 2, 2]))
    written = predict_volume_files(predictor, [tmp_path / "in"], tmp_path / "out", True)
    assert [p.name for p in written] == ["a_mask.tif", "b_mask.tif"]
    mask = read_volume(tmp_path / "out" / "a_mask.tif")
    # Identity model, threshold 0.5: voxels of value >= 128 (128 / 255 > 0.5) are 255.
    assert mask.data.tolist() == [[[0, 255], [255, 0]], [[0, 255], [255, 0]]]
    assert mask.spacing == pytest.approx((2.0, 0.5, 0.5))
    probabilities = read_volume(tmp_path / "out" / "b_prob.tif").data
    np.testing.assert_allclose(probabilities, volume / 255, atol=1e-6)
    with pytest.raises(DataError, match="no such file"):
        collect_volumes([tmp_path / "missing.tif"])


def test_tile_accepts_a_side_or_three() -> None:
    predictor = VolumePredictor(first_channel, metadata([4, 6, 8]))
    assert predictor.tile == (4, 6, 8)
    predictor.tile = 5  # what `--tile 5` sets
    assert predictor.tile == (5, 5, 5)
    with pytest.raises(ConfigError, match="tile"):
        predictor.tile = (4, 4)
