"""File names that are not valid UTF-8 (Linux names are bytes) work in every command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import seglab
from seglab.names import printable

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="names are bytes on Linux only")

ODD = os.fsdecode(b"a\xffb")  # the name Python gives the file: "a\udcffb"


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """A folders-layout set of two images, one named with the byte 0xff."""
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    image = np.zeros((32, 32), np.uint8)
    image[8:20, 8:20] = 200
    for name in (ODD, "ok"):
        Image.fromarray(image).save(data / "images" / f"{name}.png")
        Image.fromarray((image > 0).astype(np.uint8) * 255).save(data / "masks" / f"{name}.png")
    return data


def test_printable_writes_each_undecodable_byte_as_hex() -> None:
    assert printable(ODD) == "a\\xffb"
    assert printable(os.fsdecode(b"\xc3\xa9t\xe9")) == "ét\\xe9"  # valid UTF-8 stays as is


def test_a_submission_names_the_image_with_its_escaped_id(odd_folder: Path, tmp_path: Path) -> None:
    sub = tmp_path / "sub.csv"
    out = tmp_path / "pred"
    seglab("predict", "--model", "otsu", str(odd_folder / "images"), "--out", str(out),
           "--instances", "--rle", str(sub))  # fmt: skip
    ids = {line.split(",")[0] for line in sub.read_text("utf-8").splitlines()[1:]}
    assert ids == {"a\\xffb", "ok"}
    assert (out / f"{ODD}_mask.png").is_file() and (out / f"{ODD}_labels.png").is_file()


def test_evaluate_and_inspect_write_the_escaped_name(odd_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    seglab("evaluate", "--model", "otsu", "--data", str(odd_folder), "--out", str(out))
    rows = (out / "per_image.csv").read_text("utf-8").splitlines()
    assert sorted(row.split(",")[0] for row in rows[1:]) == ["a\\xffb", "ok"]
    assert "a\\xffb" in (out / "report.html").read_text("utf-8")
    grid = tmp_path / "grid.png"
    result = seglab("data", "inspect", str(odd_folder), "--grid", str(grid))
    assert "found 2" in result.stderr and "Traceback" not in result.stderr and grid.is_file()
