"""Decompression bombs: every reader checks the size a file declares (TIFF series, tiles and
strips, PNG/JPEG headers, .npy and NIfTI headers, zarr chunks) against one pixel limit before
decoding, and refuses with a message naming the file, the declared size and the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from test_large_images import NumpyPredictor, blobs, box_forward

from conftest import tiny_gray_unet_bundle
from seglab.data.io import read_image, read_label_image, read_mask
from seglab.data.lazy_io import open_lazy
from seglab.data.pixel_limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, pixel_limit
from seglab.data.volumes import read_volume, write_volume
from seglab.errors import ConfigError, DataError, PixelLimitError
from seglab.inference.large_images import predict_large

# Runs the CLI and, as it exits, writes its /proc status (VmHWM: this process's own peak RSS;
# the rusage of a child also counts the forked copy of pytest it was before exec).
_MEASURED_CLI = (
    "import atexit, sys\n"
    "status = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(status, 'w').write(open('/proc/self/status').read()))\n"
    "from seglab.cli.main import main\n"
    "main()\n"
)


def run_until_exit(args: list[str], status: Path) -> tuple[int, str, float, float]:
    """Run `seglab ARGS`; its exit code, stderr, wall seconds and peak RSS in MB."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, str(status), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    seconds = time.monotonic() - start
    peak = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    return result.returncode, result.stderr, seconds, int(peak.split()[1]) / 1024


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small zlib TIFFs that decode to 1.6 GB: the issue's 100-page stack of 4096², and a
    40960² image stored in 512² tiles and as one strip. The compressed chunks are made once
    and repeated, so writing them takes about a second."""
    folder = tmp_path_factory.mktemp("bombs")
    page = zlib.compress(bytes(4096 * 4096), 1)
    tifffile.imwrite(
        folder / "stack.tif",
        (page for _ in range(100)),
        shape=(100, 4096, 4096),
        dtype=np.uint8,
        rowsperstrip=4096,
        compression="zlib",
    )
    tile = zlib.compress(bytes(512 * 512), 1)
    tifffile.imwrite(
        folder / "tiled.tif",
        (tile for _ in range(80 * 80)),
        shape=(40960, 40960),
        dtype=np.uint8,
        tile=(512, 512),
        compression="zlib",
        bigtiff=True,
    )
    # One strip of 40960² zeros, compressed as a stream of 40 MB blocks.
    compressor = zlib.compressobj(1)
    block = bytes(40960 * 1024)
    strip = b"".join([compressor.compress(block) for _ in range(40)] + [compressor.flush()])
    tifffile.imwrite(
        folder / "strip.tif",
        iter([strip]),
        shape=(40960, 40960),
        dtype=np.uint8,
        rowsperstrip=40960,
        compression="zlib",
        bigtiff=True,
    )
    return {p.stem: p for p in folder.glob("*.tif")}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gray_unet_bundle(tmp_path_factory.mktemp("b") / "m")


def test_the_limit_defaults_and_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert pixel_limit() == DEFAULT_MAX_PIXELS == 16384 * 16384
    monkeypatch.setenv(MAX_PIXELS_ENV, "1_000_000")
    assert pixel_limit() == 1_000_000
    monkeypatch.setenv(MAX_PIXELS_ENV, "4e8")
    assert pixel_limit() == 400_000_000
    for bad in ("lots", "0", "-5", "1.5", "inf", "nan"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ConfigError, match=MAX_PIXELS_ENV):
            pixel_limit()


@pytest.mark.parametrize(
    ("name", "declared"),
    [("stack", "100 x 4096 x 4096"), ("tiled", "40960 x 40960"), ("strip", "40960 x 40960")],
)
def test_tiff_bombs_are_refused_from_the_header(
    bombs: dict[str, Path], name: str, declared: str
) -> None:
    start = time.monotonic()
    with pytest.raises(PixelLimitError) as info:
        read_image(bombs[name])
    assert time.monotonic() - start < 1  # decoding 1.6 GB would take several seconds
    message = str(info.value)
    assert str(bombs[name]) in message
    assert f"{declared} = 1,677,721,600 pixels" in message
    assert f"limit of {DEFAULT_MAX_PIXELS:,}" in message and MAX_PIXELS_ENV in message


def test_cli_predict_refuses_the_issues_stack_quickly_in_bounded_memory(
    bombs: dict[str, Path], tmp_path: Path
) -> None:
    args = ["predict", "--model", "otsu", str(bombs["stack"]), "--out", str(tmp_path / "o")]
    code, stderr, seconds, peak_mb = run_until_exit([*args, "--no-progress"], tmp_path / "status")
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "stack.tif" in stderr and "100 x 4096 x 4096" in stderr
    # Measured: ~1.5 s and ~110 MB; decoding the stack took 9.6 s and 1.75 GB.
    assert peak_mb < 600, peak_mb
    assert seconds < 30, seconds


@pytest.mark.parametrize("name", ["tiled", "strip"])
def test_cli_predict_in_memory_refuses_a_declared_40960_square(
    bombs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    args = ["predict", "--model", "otsu", str(bombs[name]), "--out", str(tmp_path / "o")]
    code, stderr, seconds, peak_mb = run_until_exit(
        [*args, "--lazy-above", "1e6"], tmp_path / "status"
    )
    assert code == 2, stderr
    assert "Traceback" not in stderr and "40960 x 40960" in stderr
    assert peak_mb < 600, peak_mb
    assert seconds < 30, seconds


def test_cli_lazy_predict_refuses_a_tiff_stored_as_one_huge_strip(
    bombs: dict[str, Path], bundle: Path, tmp_path: Path
) -> None:
    args = ["predict", "--model", str(bundle), str(bombs["strip"]), "--out", str(tmp_path / "o")]
    code, stderr, seconds, peak_mb = run_until_exit(
        [*args, "--backend", "torch", "--no-progress"], tmp_path / "status"
    )
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "strip.tif" in stderr and "chunks" in stderr and "40960 x 40960" in stderr
    # Measured: ~4 s and ~300 MB (torch loaded); before, it decoded the 1.6 GB strip for every
    # band (3.6 GB after a minute, and still running).
    assert peak_mb < 900, peak_mb
    assert seconds < 60, seconds
    assert not (tmp_path / "o" / "strip_mask.tif").exists()


def test_png_and_jpeg_headers_are_checked_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = np.zeros((120, 100), np.uint8)
    Image.fromarray(image).save(tmp_path / "gray.png")
    Image.fromarray(image).save(tmp_path / "gray.jpg")
    Image.fromarray(image).convert("P").save(tmp_path / "palette.png")
    import cv2

    cv2.imwrite(str(tmp_path / "rgb16.png"), np.zeros((120, 100, 3), np.uint16))
    monkeypatch.setenv(MAX_PIXELS_ENV, str(120 * 100))
    assert read_image(tmp_path / "gray.png").shape == (120, 100, 1)  # at the limit: fine
    monkeypatch.setenv(MAX_PIXELS_ENV, str(120 * 100 - 1))
    for name in ("gray.png", "gray.jpg", "rgb16.png"):
        with pytest.raises(DataError, match=r"120 x 100 = 12,000 pixels.*limit of 11,999"):
            read_image(tmp_path / name)
    with pytest.raises(DataError, match="12,000 pixels"):
        read_label_image(tmp_path / "palette.png")
    with pytest.raises(DataError, match="12,000 pixels"):
        read_mask(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png", max_pixels=12_000).shape == (120, 100, 1)


def test_pillows_own_bomb_check_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(np.zeros((60, 50), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="Pillow's decompression-bomb check"):
        read_image(tmp_path / "a.png")


def test_a_tile_larger_than_the_limit_is_refused_even_in_a_small_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((16, 16), np.uint8), tile=(256, 256))
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(DataError, match=r"tiles or strips of 256 x 256 = 65,536 pixels"):
        read_image(tmp_path / "t.tif")


def test_volume_headers_are_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel

    volume = np.zeros((10, 20, 30), np.uint8)
    np.save(tmp_path / "v.npy", volume)
    np.save(tmp_path / "c.npy", np.zeros((10, 20, 30, 2), np.uint8))  # channels do not count
    write_volume(tmp_path / "v.tif", volume)
    nibabel.save(nibabel.Nifti1Image(volume.T.copy(), np.eye(4)), tmp_path / "v.nii.gz")
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10 * 20 * 30))
    for name in ("v.npy", "c.npy", "v.tif", "v.nii.gz"):
        assert read_volume(tmp_path / name).data.shape[:3] == (10, 20, 30)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10 * 20 * 30 - 1))
    for name, declared in [
        ("v.npy", "10 x 20 x 30"),
        ("c.npy", "10 x 20 x 30"),
        ("v.tif", "10 x 20 x 30"),
        ("v.nii.gz", "30 x 20 x 10"),  # NIfTI's own (x, y, z) order
    ]:
        with pytest.raises(DataError, match=f"a volume of {declared} = 6,000 pixels") as info:
            read_volume(tmp_path / name)
        assert name in str(info.value)


def test_the_lazy_path_bounds_what_is_decoded_at_once_not_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = blobs((200, 300), seed=2)
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(64, 64), compression="zlib")
    tifffile.imwrite(tmp_path / "strip.tif", image, rowsperstrip=200, compression="zlib")
    zarr.create_array(str(tmp_path / "small.zarr"), data=image, chunks=(64, 64))
    zarr.create_array(str(tmp_path / "whole.zarr"), data=image, chunks=(200, 300))
    # The image (60,000 pixels) is above the limit; its tiles, chunks and bands are below.
    monkeypatch.setenv(MAX_PIXELS_ENV, "50000")
    with pytest.raises(DataError):
        read_image(tmp_path / "tiled.tif")
    expected = NumpyPredictor(box_forward, normalize="percentile").predict(image).mask
    for name in ("tiled.tif", "small.zarr"):
        predictor = NumpyPredictor(box_forward, normalize="percentile")
        done = predict_large(predictor, tmp_path / name, tmp_path / f"{name}_mask.tif")
        mask = tifffile.imread(done.mask)
        np.testing.assert_array_equal(mask, expected.astype(np.uint8) * 255)
    for name in ("strip.tif", "whole.zarr"):
        with pytest.raises(DataError, match=r"chunks .* 200 x 300 = 60,000 pixels") as info:
            open_lazy(tmp_path / name)
        assert name in str(info.value)
    # A band of rows is checked too: 200 rows of 300 columns at once is above the limit.
    with open_lazy(tmp_path / "tiled.tif") as lazy:
        assert lazy.read_rows(slice(0, 64)).shape == (64, 300, 1)
        with pytest.raises(DataError, match="rows 0..200"):
            lazy.read_rows(slice(0, 200))
