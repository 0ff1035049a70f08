"""Config validation: defaults, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import seglab
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


def test_a_single_model_param_changes_the_defaults_instead_of_replacing_them(
    tmp_path: Path,
) -> None:
    assert load_config(None, ["model.params.n_filters=8"]).model.params == {
        "n_filters": 8,
        "batch_norm": True,
    }
    assert load_config(None, ["model.params={n_filters: 3}"]).model.params == {"n_filters": 3}
    assert load_config(None, ["data.layout=volumes", "model.params.n_filters=2"]).model.params == {
        "n_filters": 2
    }
    written = tmp_path / "exp.yaml"
    written.write_text("model:\n  params:\n    n_filters: 3\n")
    assert load_config(written, ["model.params.depth=3"]).model.params == {
        "n_filters": 3,
        "depth": 3,
    }


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


def test_smp_starts_from_its_own_defaults_not_the_unets() -> None:
    # Checked against SmpModel's signature only: smp itself need not be installed.
    assert load_config(None, ["model.name=smp"]).model.params == {}
    encoder = ["model.name=smp", "model.params.encoder=resnet18"]
    assert load_config(None, encoder).model.params == {"encoder": "resnet18"}
    with pytest.raises(ConfigError, match="'model.params.n_filters' for model 'smp'"):
        load_config(None, ["model.name=smp", "model.params.n_filters=2"])


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


# Each override is a bad value a user can give, and the key its error must name.
BAD_OVERRIDES = [
    (["train.lr=.inf"], "train.lr"),
    (["train.lr=.nan"], "train.lr"),
    (["train.lr=nan"], "train.lr"),
    (["train.lr=0"], "train.lr"),
    (["train.lr=-0.001"], "train.lr"),
    (["train.weight_decay=.inf"], "train.weight_decay"),
    (["train.weight_decay=-0.1"], "train.weight_decay"),
    (["train.epochs=0"], "train.epochs"),
    (["data.batch_size=0"], "data.batch_size"),
    (["train.threshold_range=[0.05, 0.95, 0]"], "train.threshold_range"),
    (["train.threshold_range=[0.9, 0.1, 0.05]"], "train.threshold_range"),
    (["train.threshold_range=[0.1, 0.9, -0.05]"], "train.threshold_range"),
    (["train.threshold_range=[0.1, .nan, 0.05]"], "train.threshold_range"),
    (["data.size=[0, 0]"], "data.size"),
    (["data.size=[-64, 64]"], "data.size"),
    (["data.crop=0"], "data.crop"),
    (["data.crop=-8"], "data.crop"),
    (["seed=-1"], "seed"),
    (["data.val_fraction=1"], "data.val_fraction"),
    (["data.test_fraction=-0.1"], "data.test_fraction"),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "val_fraction + test_fraction"),
    (["instances.min_dynamic=.inf"], "instances.min_dynamic"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD_OVERRIDES, ids=lambda v: str(v))
def test_bad_values_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert key in str(info.value)


def test_sound_edge_values_are_accepted() -> None:
    cfg = load_config(
        None,
        [
            "seed=0",
            "train.threshold_range=[0.5, 0.5, 0.1]",
            "data.val_fraction=0.5",
            "data.test_fraction=0.49",
            "data.size=[1, 1]",
        ],
    )
    assert cfg.train.threshold_range == (0.5, 0.5, 0.1)
    assert cfg.data.size == (1, 1)


def test_a_folder_or_a_non_utf8_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder") as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("train:\n  epochs: 3  # café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(latin1)
    assert str(latin1) in str(info.value)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "train.lr=.inf"], "train.lr"),
        (["--set", "data.size=[0, 0]"], "data.size"),
        (["--config", "."], "is a folder"),
    ],
    ids=["lr-inf", "size-zero", "config-folder"],
)
def test_cli_reports_bad_config_without_a_traceback(args: list[str], named: str) -> None:
    result = seglab("train", "--no-track", *args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert named in output
    assert "Traceback" not in output
