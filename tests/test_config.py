"""Config validation: defaults, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seglab.config import (
    apply_overrides,
    config_to_dict,
    dump_config,
    flatten,
    load_config,
)
from seglab.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.model.name == "unet"
    assert cfg.loss.name == "bce_dice"
    assert cfg.train.patience == 5


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        None,
        [
            "train.epochs=3",
            "data.size=[64, 64]",
            "train.lr=3e-4",
            "model.params.batch_norm=true",
            "tracking.enabled=false",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.data.size == (64, 64)
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.params["batch_norm"] is True
    assert cfg.tracking.enabled is False


def test_apply_overrides_does_not_mutate_input() -> None:
    raw = {"train": {"epochs": 1}}
    apply_overrides(raw, ["train.epochs=2"])
    assert raw == {"train": {"epochs": 1}}


def test_unknown_key_names_key_and_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.epoch=3"])
    message = str(info.value)
    assert "train.epoch" in message
    assert "epochs" in message and "patience" in message


def test_unknown_top_level_section() -> None:
    with pytest.raises(ConfigError, match="'trian'"):
        load_config(None, ["trian.epochs=3"])


def test_wrong_type_names_key() -> None:
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=many"])


def test_out_of_range_value() -> None:
    with pytest.raises(ConfigError, match="data.val_fraction"):
        load_config(None, ["data.val_fraction=1.5"])


def test_unknown_model_and_loss_list_valid_names() -> None:
    with pytest.raises(ConfigError, match="unet"):
        load_config(None, ["model.name=resnet9000"])
    with pytest.raises(ConfigError, match="bce_dice"):
        load_config(None, ["loss.name=nope"])


def test_unknown_model_param_lists_valid_params() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model.params.n_filter=3"])
    assert "model.params.n_filter" in str(info.value)
    assert "n_filters" in str(info.value)


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["train.epochs"])


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.epochs=7", f"data.root={tmp_path}"])
    path = tmp_path / "config.yaml"
    dump_config(cfg, path)
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)
    assert yaml.safe_load(path.read_text())["train"]["epochs"] == 7


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}}) == {"a.b": 1, "a.c.d": 2, "e": {}}
