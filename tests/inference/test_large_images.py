"""Lazy prediction of large images (`predict_large`): equal to the in-memory path, written as
TIFF or zarr, read from TIFF / OME-TIFF / zarr / OME-Zarr, with bounded memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from conftest import seglab, tiny_gray_unet_bundle
from seglab.data.lazy_io import open_lazy
from seglab.errors import ConfigError, DataError
from seglab.inference.base import BasePredictor
from seglab.inference.files import collect_inputs
from seglab.inference.large_images import needs_lazy, predict_large
from seglab.inference.sliding_window import sliding_window_predict


def box_forward(batch: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for a network: 3x3 mean of the channels weighted 1, 2, ...
    (zeros outside the tile, so tile borders and padding matter), through a steep sigmoid."""
    weights = np.arange(1, batch.shape[1] + 1, dtype=np.float32)
    x = np.tensordot(weights / weights.sum(), batch, axes=(0, 1))
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    s = sum(p[:, i : i + x.shape[1], j : j + x.shape[2]] for i in range(3) for j in range(3))
    return (1 / (1 + np.exp(-(s / 9 - 0.5) * 12)))[:, None].astype(np.float32)


def three_classes(batch: np.ndarray) -> np.ndarray:
    """Softmax over (6x, 6 - 6x, 3.5) of the box filter x: a 3-class stand-in."""
    x = box_forward(batch)[:, 0]
    logits = np.stack([6 * x, 6 * (1 - x), np.full_like(x, 3.5)], axis=1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


class NumpyPredictor(BasePredictor):
    def __init__(self, forward: Any = box_forward, **pre: Any) -> None:
        channels = pre.pop("channels", 1)
        multiclass = pre.pop("multiclass", False)
        preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
        preprocessing.update(tile=64, channels=channels, **pre)
        meta = {"preprocessing": preprocessing, "in_channels": channels, "threshold": 0.5}
        super().__init__({**meta, "task": "multiclass" if multiclass else "binary"})
        self._forward = forward

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(batch)


def blobs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth uint8 blobs spanning 0..255, so that masks are neither empty nor full."""
    import cv2

    noise = np.random.default_rng(seed).random(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4).reshape(shape)
    return np.round((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)


def expected_tiff(prediction: Any) -> tuple[np.ndarray, np.ndarray]:
    return prediction.mask.astype(np.uint8) * 255, np.round(prediction.probabilities * 255)


@pytest.mark.parametrize("normalize", ["scale", "percentile"])
@pytest.mark.parametrize("views", [["raw"], ["raw", "invert"]])
def test_tiff_mask_and_probabilities_equal_the_in_memory_prediction(
    tmp_path: Path, normalize: str, views: list[str]
) -> None:
    # 300 x 500 is no multiple of the tile: the last tiles overlap more, as in memory.
    image = blobs((300, 500))
    tifffile.imwrite(tmp_path / "in.tif", image, tile=(64, 64), compression="zlib")
    predictor = NumpyPredictor(normalize=normalize, views=views)
    predictor.overlap = 0.5
    result = predict_large(predictor, tmp_path / "in.tif", tmp_path / "m.tif", tmp_path / "p.tif")
    # Same boxes, weights and summation order: equal to the bit, not approximately.
    mask, probabilities = expected_tiff(predictor.predict(image))
    assert 0.2 < (mask > 0).mean() < 0.8
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), mask)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), probabilities)
    assert result.shape == (300, 500)
    assert result.foreground_fraction == pytest.approx((mask > 0).mean())
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        page = tif.pages[0]
        assert tif.is_bigtiff and page.is_tiled and page.compression == 8  # zlib
        assert (page.tilelength, page.tilewidth) == (256, 256)


def test_torch_unet_through_torch_forward_matches_in_memory(tmp_path: Path) -> None:
    import torch

    from seglab.inference.predictor import torch_forward
    from seglab.models import create_model

    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=1, n_filters=1, depth=2)
    forward = torch_forward(model, "cpu", precision="32")
    predictor = NumpyPredictor(forward)
    image = blobs((150, 200), seed=3)
    tifffile.imwrite(tmp_path / "in.tif", image, tile=(64, 64), compression="zlib")
    reference = predictor.predict(image)
    # The untrained net sits near one value: threshold at its median so the mask is mixed.
    predictor.threshold = float(np.median(reference.probabilities))
    predict_large(predictor, tmp_path / "in.tif", tmp_path / "m.zarr", tmp_path / "p.zarr")
    mask, probabilities = expected_tiff(predictor.predict(image))
    assert 0.2 < (mask > 0).mean() < 0.8
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "m.zarr"), mode="r")[:], mask)
    np.testing.assert_array_equal(zarr.open(str(tmp_path / "p.zarr"), mode="r")[:], probabilities)


def test_tiles_past_the_edge_are_reflections_of_the_image(tmp_path: Path) -> None:
    image = blobs((40, 300), seed=1)  # shorter than the 64-pixel tile
    tifffile.imwrite(tmp_path / "thin.tif", image)  # uncompressed: read as a memory map
    predictor = NumpyPredictor()
    predict_large(predictor, tmp_path / "thin.tif", tmp_path / "m.tif", tmp_path / "p.tif")
    batch = predictor.preprocess(image)[0]
    reflected = np.pad(batch, ((0, 0), (0, 24), (0, 0)), mode="reflect")
    expected = sliding_window_predict(reflected, box_forward, (64, 64))[0, :40]
    got = tifffile.imread(tmp_path / "p.tif")
    np.testing.assert_array_equal(got, np.round(expected * 255))
    # The in-memory path reflects as well; zeros in their place would change the last rows.
    np.testing.assert_array_equal(got, np.round(predictor.predict_proba(image) * 255))
    zeros = np.zeros((batch.shape[0], 64, batch.shape[2]), np.float32)
    zeros[:, :40] = batch
    zero_padded = np.round(sliding_window_predict(zeros, box_forward, (64, 64))[0, :40] * 255)
    assert not np.array_equal(got[-1], zero_padded[-1])


def test_multiclass_writes_the_argmax_classes(tmp_path: Path) -> None:
    image = blobs((130, 170), seed=2)
    tifffile.imwrite(tmp_path / "in.tif", image, tile=(32, 32), compression="zlib")
    predictor = NumpyPredictor(three_classes, multiclass=True)
    predict_large(predictor, tmp_path / "in.tif", tmp_path / "m.tif", tmp_path / "p.tif")
    reference = predictor.predict(image)
    mask = tifffile.imread(tmp_path / "m.tif")
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2}
    np.testing.assert_array_equal(mask, reference.mask)
    best = np.round(reference.probabilities.max(0) * 255)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), best)


def write_ome_zarr(path: Path, image: np.ndarray) -> None:
    """An OME-Zarr 0.5 image with axes (c, y, x) and two resolution levels."""
    group = zarr.open_group(str(path), mode="w")
    axes = [{"name": "c", "type": "channel"}, {"name": "y"}, {"name": "x"}]
    datasets = [{"path": "0"}, {"path": "1"}]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    planes = np.moveaxis(image, -1, 0)
    group.create_array("0", shape=planes.shape, chunks=(3, 64, 64), dtype=planes.dtype)[:] = planes
    half = planes[:, ::2, ::2]
    group.create_array("1", shape=half.shape, chunks=(3, 64, 64), dtype=half.dtype)[:] = half


def test_rgb_inputs_from_ome_zarr_pyramid_tiff_and_plain_zarr(tmp_path: Path) -> None:
    image = np.stack([blobs((140, 190), seed=s) for s in range(3)], axis=2)
    write_ome_zarr(tmp_path / "rgb.ome.zarr", image)
    with tifffile.TiffWriter(tmp_path / "rgb.ome.tif") as tif:
        tif.write(image, subifds=1, tile=(64, 64), photometric="rgb", compression="zlib")
        tif.write(image[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb")
    zarr.create_array(str(tmp_path / "plain.zarr"), data=image, chunks=(64, 64, 3))
    predictor = NumpyPredictor(channels=3, normalize="percentile")
    mask, _ = expected_tiff(predictor.predict(image))
    gray = NumpyPredictor(channels=1)  # RGB averaged to gray, as `match_channels` does
    gray_mask, _ = expected_tiff(gray.predict(image))
    for name in ("rgb.ome.zarr", "rgb.ome.tif", "plain.zarr"):
        with open_lazy(tmp_path / name) as lazy:
            assert (lazy.height, lazy.width, lazy.channels) == (140, 190, 3)
        predict_large(predictor, tmp_path / name, tmp_path / f"{name}.tif")
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f"{name}.tif"), mask, name)
        predict_large(gray, tmp_path / name, tmp_path / f"{name}.gray.tif")
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f"{name}.gray.tif"), gray_mask)


def test_a_failure_leaves_no_output_that_looks_complete(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "in.tif", blobs((300, 300)), tile=(64, 64), compression="zlib")
    calls = []

    def failing(batch: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("out of GPU memory")
        return box_forward(batch)

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="GPU"):
        predict_large(NumpyPredictor(failing), tmp_path / "in.tif", out / "m.tif", out / "p.zarr")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.mkdir(), "cannot open as a zarr image"),
        (lambda p: (p.mkdir(), (p / "zarr.json").write_text("{oops")), "cannot open"),
        (lambda p: zarr.open_group(str(p), mode="w"), "multiscales"),
        (lambda p: zarr.create_array(str(p), shape=(2, 5, 30, 40), dtype="u1"), "axes"),
        (lambda p: zarr.create_array(str(p), shape=(30, 40), dtype="f4"), "pixel type"),
    ],
)
def test_bad_zarr_inputs_raise_a_data_error_naming_the_folder(
    tmp_path: Path, make: Any, problem: str
) -> None:
    path = tmp_path / "bad.zarr"
    make(path)
    with pytest.raises(DataError, match=problem) as error:
        predict_large(NumpyPredictor(), path, tmp_path / "m.tif")
    assert error.value.path == path
    assert not (tmp_path / "m.tif").exists()


def test_whole_image_views_and_baselines_are_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "in.tif", blobs((70, 70)))
    with pytest.raises(ConfigError, match="clahe"):
        predict_large(NumpyPredictor(views=["raw", "clahe"]), tmp_path / "in.tif", tmp_path / "m")
    from seglab.baseline import create_baseline

    with pytest.raises(ConfigError, match="whole images"):
        predict_large(create_baseline("otsu"), tmp_path / "in.tif", tmp_path / "m.tif")


def test_zarr_folders_are_single_inputs_and_big_tiffs_go_lazy(tmp_path: Path) -> None:
    write_ome_zarr(tmp_path / "set" / "a.ome.zarr", np.zeros((20, 30, 3), np.uint8))
    tifffile.imwrite(tmp_path / "set" / "b.tif", np.zeros((100, 200), np.uint8))
    assert collect_inputs([tmp_path / "set" / "a.ome.zarr"]) == [tmp_path / "set" / "a.ome.zarr"]
    found = collect_inputs([tmp_path / "set"])
    assert found == [tmp_path / "set" / "a.ome.zarr", tmp_path / "set" / "b.tif"]
    assert needs_lazy(found[0], None) and needs_lazy(found[0], 1e9)
    assert needs_lazy(found[1], 0.019) and not needs_lazy(found[1], 0.02)


def test_predict_files_sends_big_tiffs_and_zarr_folders_to_the_lazy_path(tmp_path: Path) -> None:
    from PIL import Image

    from seglab.inference.files import predict_files

    image = blobs((120, 160), seed=5)
    Image.fromarray(image).save(tmp_path / "small.png")
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64), compression="zlib")
    write_ome_zarr(tmp_path / "plate.ome.zarr", np.repeat(image[..., None], 3, axis=2))
    inputs: list[str | Path] = [tmp_path / "small.png", tmp_path / "big.tif"]
    inputs.append(tmp_path / "plate.ome.zarr")
    predictor = NumpyPredictor()
    out = tmp_path / "out"
    done = predict_files(
        predictor,
        inputs,
        out,
        probabilities=True,
        progress=False,
        lazy_above=0.01,
        large_format="zarr",
    )
    assert [d.mask.name for d in done] == ["small_mask.png", "big_mask.zarr", "plate_mask.zarr"]
    assert sorted(p.name for p in out.iterdir()) == [
        "big_mask.zarr",
        "big_prob.zarr",
        "plate_mask.zarr",
        "plate_prob.zarr",
        "small_mask.png",
        "small_prob.png",
    ]
    small = np.asarray(Image.open(out / "small_mask.png"))
    for name in ("big_mask.zarr", "plate_mask.zarr"):
        np.testing.assert_array_equal(zarr.open(str(out / name), mode="r")[:], small)
    assert done[1].foreground_fraction == pytest.approx((small > 0).mean())
    with pytest.raises(ConfigError, match="tif, zarr"):
        predict_files(predictor, inputs, out, progress=False, large_format="png")


def test_the_lazy_path_imports_no_torch() -> None:
    code = (
        "import sys, seglab.inference.large_images, seglab.inference.files\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


MEMORY_CHILD = """
import sys
import numpy as np, tifffile
from seglab.inference.base import BasePredictor
from seglab.inference.large_images import predict_large

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

side, tile, folder = int(sys.argv[1]), 256, sys.argv[2]
def tiles():  # a checkerboard of 50 x 70 fields, written tile by tile
    y, x = np.mgrid[0:tile, 0:tile]
    for top in range(0, side, tile):
        for left in range(0, side, tile):
            yield (((x + left) // 50 + (y + top) // 70) % 2 * 200 + 20).astype(np.uint8)
with tifffile.TiffWriter(f"{folder}/big.tif", bigtiff=True) as tif:
    tif.write(tiles(), shape=(side, side), dtype=np.uint8, tile=(tile, tile),
              compression="zlib", compressionargs={"level": 1})

class Cheap(BasePredictor):
    def forward(self, batch):
        return batch[:, :1]

pre = {"normalize": "percentile", "percentiles": [1, 99], "input_size": None, "tile": 128}
predictor = Cheap({"preprocessing": pre, "in_channels": 1, "threshold": 0.5})
predictor.overlap = 0.0
tifffile.imwrite(f"{folder}/small.tif", np.zeros((300, 300), np.uint8), tile=(256, 256),
                 compression="zlib")
predict_large(predictor, f"{folder}/small.tif", f"{folder}/small_mask.tif")  # warm up imports
before = status("VmRSS")
result = predict_large(predictor, f"{folder}/big.tif", f"{folder}/big_mask.tif")
print(before, status("VmHWM"), result.foreground_fraction)
"""


def test_a_tiff_larger_than_the_memory_limit_is_predicted_within_it(tmp_path: Path) -> None:
    side = 12000  # 144 MB decoded, ~6 MB as the zlib-compressed TIFF
    decoded = side * side
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_CHILD), str(side), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    before, peak, foreground = child.stdout.split()
    # The limit: half the decoded image above the warmed-up process. Measured: ~45 MB growth
    # with 128-pixel tiles (about 25 bytes per pixel of a 128 x 12000 band).
    limit = int(before) + decoded // 2
    assert int(peak) < limit, f"peak {int(peak) / 1e6:.0f} MB > limit {limit / 1e6:.0f} MB"
    assert float(foreground) == pytest.approx(0.5, abs=0.01)
    # One block far from the origin, read lazily: the fields of value 220 are foreground.
    store = tifffile.imread(tmp_path / "big_mask.tif", aszarr=True)
    mask = zarr.open(store, mode="r")
    assert mask.shape == (side, side)
    y, x = np.mgrid[7000:7256, 9000:9256]
    expected = ((x // 50 + y // 70) % 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(mask[7000:7256, 9000:9256]), expected)
    store.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gray_unet_bundle(tmp_path_factory.mktemp("b") / "m")


def test_cli_predicts_a_big_tiff_lazily_as_it_would_in_memory(bundle: Path, tmp_path: Path) -> None:
    from seglab.inference.loading import load_predictor

    image = blobs((200, 300), seed=4)
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64), compression="zlib")
    predictor = load_predictor(bundle, "cpu", "torch", "32")
    # The untrained net sits near one value: threshold at its median so the mask is mixed.
    predictor.threshold = float(np.median(predictor.predict_proba(image)))
    seglab(
        "predict",
        "--model",
        str(bundle),
        str(tmp_path / "big.tif"),
        "--out",
        str(tmp_path / "out"),
        "--lazy-above",
        "0.01",
        "--probabilities",
        "--backend",
        "torch",
        "--precision",
        "32",
        "--threshold",
        repr(predictor.threshold),
        "--no-progress",
    )
    lazy = tifffile.imread(tmp_path / "out" / "big_mask.tif")
    assert (tmp_path / "out" / "big_prob.tif").is_file()
    assert not (tmp_path / "out" / "big_mask.png").exists()
    in_memory = predictor.predict(image).mask.astype(np.uint8) * 255
    assert 0.2 < (lazy > 0).mean() < 0.8
    np.testing.assert_array_equal(lazy, in_memory)


def test_cli_reports_a_bad_zarr_in_one_line(
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from seglab.cli.main import main

    (tmp_path / "broken.ome.zarr").mkdir()
    args = ["predict", "--model", str(bundle), str(tmp_path / "broken.ome.zarr")]
    args += ["--out", str(tmp_path / "out"), "--backend", "torch", "--no-progress"]
    monkeypatch.setattr(sys, "argv", ["seglab", *args])
    with pytest.raises(SystemExit) as exit_code:
        main()
    assert exit_code.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert "broken.ome.zarr" in stderr and "cannot open as a zarr image" in stderr
