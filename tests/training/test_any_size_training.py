"""Training with the default config on the shapes users have: mixed sizes and aspect ratios,
non-square images, Cityscapes-shaped scenes; whole-image validation by sliding window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch import nn

from seglab.config import load_config
from seglab.data.streets import write_streets
from seglab.training.inputs import resolve_crop
from seglab.training.run import train
from seglab.training.tasks import SegmentationTask

QUICK = [
    "train.epochs=1",
    "tracking.enabled=false",
    "model.params.n_filters=1",
    "model.params.batch_norm=false",
]


def write_folder(root: Path, shapes: list[tuple[int, int]], bright: bool) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (height, width) in enumerate(shapes):
        mask = np.zeros((height, width), bool)
        for _ in range(4):
            r, c = rng.integers(0, height), rng.integers(0, width)
            mask[max(0, r - 4) : r + 4, max(0, c - 4) : c + 4] = True
        background, nucleus = (220, 50) if bright else (20, 200)
        image = np.where(mask, nucleus, background).astype(np.uint16) * 257  # 16-bit
        Image.fromarray(image).save(root / "images" / f"img{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"img{i}.png")
    return root


def test_mixed_sizes_and_aspect_ratios_train_with_the_defaults(tmp_path: Path) -> None:
    shapes = [(37, 53), (64, 40), (48, 80), (80, 48), (45, 45), (52, 70)] * 2
    data = write_folder(tmp_path / "mixed", shapes, bright=True)
    config = load_config(None, [f"data.root={data}", *QUICK])
    result = train(config, tmp_path / "runs" / "mixed", progress=False)
    assert result.bundle_path.is_dir() and result.test_metrics is not None
    # Crops of the smallest side (37) rounded down to a multiple of 16.
    assert resolve_crop("auto", shapes) == 32
    assert (tmp_path / "runs" / "cache").is_dir()  # the decoded samples, beside the runs


def test_non_square_images_of_one_size_rotate_without_crashing(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "wide", [(32, 64)] * 12, bright=False)
    config = load_config(None, [f"data.root={data}", "data.augment.rotate90=1", *QUICK])
    assert resolve_crop(config.data.crop, [(32, 64)]) is None  # whole images
    assert train(config, tmp_path / "runs" / "wide", progress=False).bundle_path.is_dir()


def test_cityscapes_shaped_scenes_train_on_crops(tmp_path: Path) -> None:
    # Cityscapes' 2:1 aspect at a sixteenth of its side; above 512 pixels wide, so cropped.
    write_streets(tmp_path / "streets", 10, height=160, width=640, seed=0)
    overrides = [f"data.root={tmp_path / 'streets'}", "model.name=unet_mini", *QUICK]
    result = train(load_config(None, overrides), tmp_path / "runs" / "streets", progress=False)
    written = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert written["data"]["layout"] == "cityscapes" and written["data"]["crop"] == "auto"
    assert resolve_crop("auto", [(160, 640)]) == 160
    assert "miou" in (result.test_metrics or {})


def test_validation_of_images_larger_than_the_tile_goes_by_sliding_window() -> None:
    model = nn.Conv2d(1, 1, 1)  # position-free: tiles blend back to the whole-image logits
    model.divisor = 16  # type: ignore[assignment]
    task = SegmentationTask(model, nn.BCEWithLogitsLoss(), tile=32).eval()
    images = torch.rand(2, 1, 50, 90)
    with torch.no_grad():
        tiled = task(images)
        whole = model(images)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_validation_of_volumes_larger_than_the_patch_goes_by_cubic_sliding_window() -> None:
    model = nn.Conv3d(1, 1, 1)
    model.divisor = 8  # type: ignore[assignment]
    task = SegmentationTask(model, nn.BCEWithLogitsLoss(), tile=16).eval()
    volumes = torch.rand(1, 1, 12, 40, 30)  # deeper than nothing, wider than the tile
    calls: list[tuple[int, ...]] = []
    model.register_forward_hook(lambda _m, inputs, _o: calls.append(tuple(inputs[0].shape)))
    with torch.no_grad():
        tiled = task(volumes)
        whole = model(volumes)
    assert {shape[2:] for shape in calls[:-1]} == {(16, 16, 16)}  # only tiles went through
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
