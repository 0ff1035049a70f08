"""`seglab config show`: the resolved config as YAML with a comment per key; the README's
configuration block is its `--defaults` output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from conftest import seglab
from seglab.cli.main import app
from seglab.config import Config, commented_yaml, config_to_dict, load_config

ROOT = Path(__file__).resolve().parents[2]


def _show(*args: str) -> str:
    result = CliRunner().invoke(app, ["config", "show", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```\n", 1)[0]


def test_the_readme_block_is_config_show_defaults() -> None:
    # To refresh it: replace the block with the output of `seglab config show --defaults`.
    assert _readme_block() == _show("--defaults")


def _sections(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += _sections(field.annotation)
    return found


@pytest.mark.parametrize("section", _sections(Config), ids=lambda s: s.__name__)
def test_every_key_says_what_it_is(section: type[BaseModel]) -> None:
    missing = [name for name, field in section.model_fields.items() if not field.description]
    assert not missing, f"{section.__name__}: no Field(description=...) for {missing}"


def test_every_key_is_shown_with_a_comment_and_loads_back() -> None:
    text = _show("--defaults")
    assert yaml.safe_load(text) == config_to_dict(Config())
    keys = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for index, line in enumerate(text.splitlines()):
        if line in keys and "  # " not in line:  # its comment is then on the line above
            assert text.splitlines()[index - 1].lstrip().startswith("#"), line
    assert all(len(line) <= 100 for line in text.splitlines())


def test_shows_the_config_a_training_command_would_run(tmp_path: Path) -> None:
    example = ROOT / "examples" / "001_unet_mini_cityscapes.yaml"
    args = ["--config", str(example), "--epochs", "3", "--set", "train.lr=0.01"]
    shown = yaml.safe_load(_show(*args, "--data", str(tmp_path)))
    expected = load_config(example, [f"data.root={tmp_path}", "train.epochs=3", "train.lr=0.01"])
    assert shown == config_to_dict(expected)
    assert shown["model"]["name"] == "unet_mini" and shown["train"]["epochs"] == 3


def test_task_defaults_are_resolved() -> None:
    shown = yaml.safe_load(_show("--task", "classification"))
    assert (shown["model"]["name"], shown["loss"]["name"]) == ("cnn", "ce")


def test_commented_yaml_round_trips_every_example(tmp_path: Path) -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        config = load_config(path)
        (tmp_path / path.name).write_text(commented_yaml(config), encoding="utf-8")
        again = load_config(tmp_path / path.name)
        assert config_to_dict(again) == config_to_dict(config), path.name


def test_bad_input_is_one_line_and_exit_2() -> None:
    result = seglab("config", "show", "--defaults", "--epochs", "3", check=False)
    assert result.returncode == 2 and "--defaults" in result.stderr
    assert "Traceback" not in result.stderr
    result = seglab("config", "show", "--set", "train.bogus=1", check=False)
    assert result.returncode == 2 and "train.bogus" in result.stderr
