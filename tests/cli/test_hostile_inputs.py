"""Every hostile input of issue 15, as a user would type it: exit 2, one message naming the
culprit, no traceback, and no output that looks complete.

Each case builds what it needs in a temporary folder (`Case.setup`), runs `seglab ARGS` in this
process through the real entry point (`seglab.cli.main.main`, its error handler included) and
checks the exit status, the message and the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import run_main, tiny_gray_unet_bundle

Edit = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]  # {data}, {bundle}, {image}, {out}, {tmp} are filled in
    expected: str  # in the message
    setup: Callable[[Path], None] = lambda tmp: None


def edited_bundle(edit: Edit) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "bundle" / "seglab.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return setup


def without(key: str) -> Edit:
    return lambda meta: {k: v for k, v in meta.items() if k != key}


def setting(*keys: str, value: Any) -> Edit:
    def edit(meta: dict[str, Any]) -> dict[str, Any]:
        inner = meta
        for key in keys[:-1]:
            inner = inner[key]
        inner[keys[-1]] = value
        return meta

    return edit


BUNDLE_EDITS: list[tuple[str, Edit, str]] = [
    ("a list", lambda meta: [meta], "seglab.json"),
    ("no model", without("model"), "model"),
    ("unknown model", setting("model", "name", value="resnet9000"), "resnet9000"),
    ("unknown argument", setting("model", "kwargs", "wings", value=2), "wings"),
    ("string threshold", setting("threshold", value="high"), "threshold"),
    ("string format", setting("format_version", value="one"), "format_version"),
    ("NaN threshold", setting("threshold", value=float("nan")), "threshold"),
    ("threshold 5", setting("threshold", value=5), "threshold"),
    ("zscore", setting("preprocessing", "normalize", value="zscore"), "zscore"),
    ("tile 0", setting("preprocessing", "tile", value=0), "tile"),
    ("unknown view", setting("preprocessing", "views", value=["xray"]), "xray"),
    ("channels", setting("model", "kwargs", "in_channels", value=3), "size mismatch"),
]
BUNDLE_COMMANDS = {
    "predict": ["predict", "--model", "{bundle}", "{image}", "--out", "{out}"],
    "evaluate": ["evaluate", "--model", "{bundle}", "--data", "{data}", "--out", "{out}"],
    "serve": ["serve", "--model", "{bundle}", "--port", "8"],
}
BUNDLE_CASES = [
    Case(f"bundle {name} ({command})", args, expected, edited_bundle(edit))
    for name, edit, expected in BUNDLE_EDITS
    for command, args in BUNDLE_COMMANDS.items()
]

TRAIN = ["train", "--data", "{data}", "--out", "{out}", "--no-track", "--epochs", "1"]


def write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_bytes(content)


def corrupt_store(tmp: Path) -> None:
    (tmp / "mlflow.db").write_bytes(b"this is not a database" * 100)


def binary_masks_as_classes(tmp: Path) -> None:
    for split in ("train", "val"):
        for index in range(3):
            image = np.full((16, 16), 60 * index + 20, np.uint8)
            mask = np.zeros((16, 16), np.uint8)
            mask[4:10, 4:10] = 255
            for folder, array in (("images", image), ("masks", mask)):
                (tmp / "binary" / split / folder).mkdir(parents=True, exist_ok=True)
                name = f"{split}{index}.png"
                Image.fromarray(array).save(tmp / "binary" / split / folder / name)


def unreadable_masks(tmp: Path) -> None:
    for folder in ("images", "masks"):
        (tmp / "broken" / folder).mkdir(parents=True)
    for index in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "broken" / "images" / f"{index}.png")
        (tmp / "broken" / "masks" / f"{index}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


def mixed_channel_volumes(tmp: Path) -> None:
    import nibabel

    root = tmp / "volumes"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(4):
        channels = (2,) if index == 0 else ()
        image = rng.random((16, 16, 16, *channels)).astype(np.float32)
        label = np.zeros((16, 16, 16), np.uint8)
        label[4:10, 4:10, 4:10] = 1
        for folder, array in (("images", image), ("labels", label)):
            nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), root / folder / f"v{index}.nii.gz")


OTHER_CASES = [
    Case("lr inf", [*TRAIN, "--set", "train.lr=.inf"], "train.lr"),
    Case("threshold step 0", [*TRAIN, "--set", "train.threshold_range=[0.1,0.9,0]"], "step"),
    Case("threshold reversed", [*TRAIN, "--set", "train.threshold_range=[0.9,0.1,0.1]"], "range"),
    Case("size 0", [*TRAIN, "--set", "data.size=[0,0]"], "data.size"),
    Case("size negative", [*TRAIN, "--set", "data.size=[-8,8]"], "data.size"),
    Case("seed -1", [*TRAIN, "--set", "seed=-1"], "seed"),
    Case(
        "fractions",
        [*TRAIN, "--set", "data.val_fraction=0.6", "--set", "data.test_fraction=0.5"],
        "fraction",
    ),
    Case("patch 0", [*TRAIN, "--set", "data.patch=[0,16,16]"], "data.patch"),
    Case("config folder", [*TRAIN, "--config", "{tmp}"], "is a folder, not a config file"),
    Case(
        "config not UTF-8",
        [*TRAIN, "--config", "{tmp}/bad.yaml"],
        "bad.yaml",
        write("bad.yaml", b"\xff\xfe: x"),
    ),
    Case("accelerator gpu", [*TRAIN, "--set", "train.accelerator=gpu"], "gpu"),
    Case(
        "tracking bogus",
        ["train", "--data", "{data}", "--out", "{out}", "--tracking-uri", "bogus://x"],
        "bogus://x",
    ),
    Case(
        "tracking corrupt",
        [
            "train",
            "--data",
            "{data}",
            "--out",
            "{out}",
            "--tracking-uri",
            "sqlite:///{tmp}/mlflow.db",
        ],
        "mlflow.db",
        corrupt_store,
    ),
    Case(
        "num_classes on 0/255 masks",
        [
            "train",
            "--data",
            "{tmp}/binary",
            "--out",
            "{out}",
            "--no-track",
            "--set",
            "data.num_classes=2",
        ],
        "data.num_classes=2",
        binary_masks_as_classes,
    ),
    Case(
        "4D NIfTI among 1-channel volumes",
        [*TRAIN, "--set", "data.layout=volumes", "--set", "data.root={tmp}/volumes"],
        "different channel counts",
        mixed_channel_volumes,
    ),
    Case("plan patch abc", ["plan", "--patch", "abc"], "--patch"),
    Case("plan patch 0", ["plan", "--patch", "0,0,0"], "--patch"),
    Case(
        "train out is a file",
        ["train", "--data", "{data}", "--out", "{tmp}/file", "--no-track"],
        "file",
        write("file", b"x"),
    ),
    Case(
        "predict out is a file",
        ["predict", "--model", "otsu", "{image}", "--out", "{tmp}/file"],
        "file",
        write("file", b"x"),
    ),
    Case(
        "evaluate out is a file",
        ["evaluate", "--model", "otsu", "--data", "{data}", "--out", "{tmp}/file"],
        "file",
        write("file", b"x"),
    ),
    Case("view without a display", ["view", "{image}"], "no display"),
    Case(
        "inspect unreadable masks",
        ["data", "inspect", "{tmp}/broken", "--grid", "{out}/grid.png"],
        "broken",
        unreadable_masks,
    ),
]


@pytest.mark.parametrize("case", [*BUNDLE_CASES, *OTHER_CASES], ids=lambda case: case.id)
def test_a_hostile_input_is_one_clear_message(
    case: Case,
    nuclei_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_gray_unet_bundle(tmp_path / "bundle")
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "image.png")
    case.setup(tmp_path)
    out = tmp_path / "out"
    names = {"data": nuclei_dir, "bundle": tmp_path / "bundle", "image": tmp_path / "image.png"}
    names |= {"out": out, "tmp": tmp_path}
    monkeypatch.chdir(tmp_path)
    for variable in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(variable, raising=False)
    code = run_main([arg.format(**names) for arg in case.args], monkeypatch)
    captured = capsys.readouterr()
    message = " ".join((captured.err + captured.out).split())  # unwrapped
    assert code == 2, message
    assert case.expected in message, message
    assert "Traceback" not in message
    # Nothing that looks complete: no bundle, mask, report or grid.
    written = [p.name for p in out.rglob("*")] if out.exists() else []
    for complete in ("seglab.json", "grid.png", "report.html", "metrics.json"):
        assert complete not in written, written
    assert not [name for name in written if name.endswith("_mask.png")], written
