"""Every command's `--help`: its examples are a list, one per line, using options it has; the
commands that train share one set of options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup
from typer.testing import CliRunner

from seglab.cli.main import app

ROOT = typer.main.get_command(app)
TRAINING_COMMANDS = ("train", "compare", "cv", "demo")
SHARED = {"--data", "--layout", "--task", "--model", "--loss", "--epochs", "--config", "--set"}
SHARED |= {"--tracking-uri", "--no-track", "--skip-bad"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(group, TyperGroup):
        return [path]
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        found += _commands(command, (*path, name))
    return found


def _command(path: tuple[str, ...]) -> Any:
    command = ROOT
    for name in path:
        command = command.commands[name]
    return command


def _options(command: Any) -> set[str]:
    return {name for p in command.params for name in (*p.opts, *p.secondary_opts)}


def _help(path: tuple[str, ...]) -> str:
    # Wide enough that no example wraps: each one must then stand on a line of its own.
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_walked() -> None:
    paths = _commands(ROOT)
    assert ("data", "synth") in paths and ("train",) in paths and ("compare",) in paths
    assert len(paths) >= 15  # config show among them


@pytest.mark.parametrize("path", _commands(ROOT), ids=" ".join)
def test_help_lists_examples_one_per_line_with_existing_options(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "Examples" in text
    after = text.split("Examples", 1)[1]
    lines = [line.strip() for line in after.splitlines() if "seglab " in line]
    assert lines, f"no example in `seglab {' '.join(path)} --help`"
    prefix = " ".join(("seglab", *path)) + " "
    options = _options(_command(path))
    for line in lines:
        assert line.startswith("• " + prefix) or line == "• " + prefix.strip(), line
        # One example per line: two runs joined into one paragraph would repeat the prefix.
        assert line.count("seglab ") == 1, line
        for option in re.findall(r"(?<!\S)--[a-z][a-z0-9-]*", line):
            assert option in options, f"{line}: {option} is not an option of this command"


@pytest.mark.parametrize("name", TRAINING_COMMANDS)
def test_training_commands_share_one_vocabulary(name: str) -> None:
    assert _options(_command((name,))) >= SHARED


def test_compare_takes_the_options_train_takes(tmp_path: Path) -> None:
    from seglab.data.streets import write_streets

    write_streets(tmp_path / "streets", 6, height=32, width=64, seed=0)
    args = ["compare", "--losses", "dice,ce_dice", "--data", str(tmp_path / "streets")]
    args += ["--layout", "cityscapes", "--epochs", "1", "--model", "unet_mini", "--no-track"]
    args += ["--set", "data.batch_size=4", "--out", str(tmp_path / "cmp"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for loss in ("dice", "ce_dice"):
        config = yaml.safe_load((tmp_path / "cmp" / loss / "config.yaml").read_text())
        assert (config["loss"]["name"], config["model"]["name"]) == (loss, "unet_mini")
        assert (config["data"]["layout"], config["train"]["epochs"]) == ("cityscapes", 1)


def _readme_commands() -> list[str]:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    found, in_shell = [], False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_shell = line.strip() == "```bash"
        elif in_shell and line.strip().startswith("seglab "):
            found.append(line.split(" #", 1)[0].strip())
    return found


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_commands_use_options_their_command_has(line: str) -> None:
    words = line.split()[1:]
    path: tuple[str, ...] = ()
    while words and (*path, words[0]) in {p[: len(path) + 1] for p in _commands(ROOT)}:
        path, words = (*path, words[0]), words[1:]
    assert path in _commands(ROOT), f"{line}: no such command"
    options = _options(_command(path))
    for option in re.findall(r"(?<!\S)--[a-z][a-z0-9-]*", line):
        assert option in options, f"{line}: {option} is not an option of seglab {' '.join(path)}"
