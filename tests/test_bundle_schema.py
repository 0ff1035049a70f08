"""A damaged or hand-edited `seglab.json` is refused with one message naming each bad entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import seglab, tiny_gray_unet_bundle
from seglab.bundle import load_bundle
from seglab.errors import BundleError


def _with(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(meta: dict[str, Any]) -> Any:
        section, _, name = key.rpartition(".")
        (meta[section] if section else meta)[name] = value
        return meta

    return edit


def _without(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda meta: {k: v for k, v in meta.items() if k != key}


CASES = [
    (lambda meta: [1, 2], "must hold a JSON object, not a list"),
    (_without("model"), "'model': Field required"),
    (_with("threshold", "high"), "'threshold': Input should be a valid number"),
    (_with("threshold", float("nan")), "'threshold': Input should be a finite number (got NaN)"),
    (_with("threshold", 5), "'threshold': Input should be less than or equal to 1 (got 5)"),
    (_with("format_version", "x"), "'format_version': Input should be a valid integer"),
    (_with("preprocessing.normalize", "zscore"), "'preprocessing.normalize'"),
    (_with("preprocessing.tile", 0), "'preprocessing.tile': tile sides must be at least 4"),
    (_with("preprocessing.views", ["bogus"]), "unknown views ['bogus']"),
    (_with("preprocessing.percentiles", [99, 1]), "0 <= low < high <= 100"),
    (_with("model.name", "nope"), "cannot build its model (unknown model 'nope'"),
    (_with("model.kwargs", {"in_channels": 3}), "size mismatch for stem.conv1.weight"),
]


@pytest.mark.parametrize(("edit", "expected"), CASES)
def test_a_bad_entry_is_refused_naming_it(
    edit: Callable[[dict[str, Any]], Any], expected: str, tmp_path: Path
) -> None:
    bundle = tiny_gray_unet_bundle(tmp_path / "model")
    meta = json.loads((bundle / "seglab.json").read_text())
    (bundle / "seglab.json").write_text(json.dumps(edit(meta)))
    with pytest.raises(BundleError) as error:
        load_bundle(bundle)
    assert str(bundle / "seglab.json") in str(error.value) or "weights" in str(error.value)
    assert expected in str(error.value)


def test_every_problem_is_listed_in_one_message(tmp_path: Path) -> None:
    bundle = tiny_gray_unet_bundle(tmp_path / "model")
    meta = json.loads((bundle / "seglab.json").read_text())
    meta["threshold"] = 5
    meta["preprocessing"]["tile"] = 0
    (bundle / "seglab.json").write_text(json.dumps(meta))
    with pytest.raises(
        BundleError,
        match=r"'preprocessing.tile': tile sides must be at least 4, got 0; 'threshold'",
    ):
        load_bundle(bundle)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_commands_print_the_problem_and_exit_2(command: str, tmp_path: Path) -> None:
    bundle = tiny_gray_unet_bundle(tmp_path / "model")
    meta = json.loads((bundle / "seglab.json").read_text())
    meta["threshold"] = float("nan")
    (bundle / "seglab.json").write_text(json.dumps(meta))
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "a.png")
    data = ["--data", str(tmp_path)] if command == "evaluate" else [str(tmp_path / "a.png")]
    result = seglab(
        command, "--model", str(bundle), *data, "--out", str(tmp_path / "o"), check=False
    )
    assert (
        result.returncode == 2 and "'threshold': Input should be a finite number" in result.stderr
    )
    assert "Traceback" not in result.stderr
