"""`seglab demo` takes the options every training command takes, and they win over its own
settings."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from seglab.cli.main import app

TINY = ["--set", "model.params.n_filters=1", "--set", "model.params.depth=2"]


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, ["demo", *args, "--no-track", "--no-progress"])
    assert result.exit_code == 0, result.output
    return result.output


def _config(out: Path, pattern: str) -> dict:
    [config] = out.glob(f"{pattern}/config.yaml")
    return yaml.safe_load(config.read_text())


def test_demo_options_win_over_its_settings(tmp_path: Path) -> None:
    out = _run("--n", "12", "--epochs", "1", "--loss", "dice", *TINY, "--out", str(tmp_path))
    assert "Demo done" in out
    config = _config(tmp_path, "run-*")
    assert (config["train"]["epochs"], config["loss"]["name"]) == (1, "dice")
    assert config["train"]["scheduler"] == "cosine"  # a demo setting that was not overridden
    assert config["data"]["root"] == str(tmp_path / "data")


def test_classification_demo_takes_the_same_options(tmp_path: Path) -> None:
    _run("--task", "classification", "--epochs", "1", "--model", "mlp", "--out", str(tmp_path))
    config = _config(tmp_path, "digits-*")
    assert (config["task"], config["model"]["name"], config["train"]["epochs"]) == (
        "classification",
        "mlp",
        1,
    )
