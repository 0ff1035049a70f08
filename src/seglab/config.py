"""Validated configuration: a tree of pydantic models, loaded from YAML and `--set a.b=c` overrides.

Unknown keys and wrong types are errors that name the key and list the valid ones. The resolved
config is written into every run folder and every model bundle, so a run can be repeated from it.
"""

from __future__ import annotations

import copy
import functools
import json
import textwrap
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from seglab.config_sections import (
    AugmentConfig,
    DataConfig,
    InstanceConfig,
    LossConfig,
    ModelConfig,
    Section,
    TrackingConfig,
    TrainConfig,
)
from seglab.errors import ConfigError

# The sections live in seglab.config_sections; they are imported from here as they always were.
__all__ = [
    "AugmentConfig",
    "Config",
    "DataConfig",
    "InstanceConfig",
    "LossConfig",
    "ModelConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_multiclass_defaults",
    "apply_overrides",
    "commented_yaml",
    "config_to_dict",
    "dump_config",
    "flatten",
    "is_multiclass",
    "load_config",
    "validate_config",
]


class Config(Section):
    """The whole configuration of a run."""

    # Classification runs on the same engine, run folder, tracking and reports.
    task: Literal["segmentation", "classification"] = Field(
        "segmentation",
        description="segmentation | classification (seed 004: one label per image; model "
        "cnn and cross-entropy by default)",
    )
    # NumPy takes 0 to 2**32 - 1.
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds Python, NumPy and torch")
    data: DataConfig = Field(DataConfig(), description="where the data is, how it becomes batches")
    model: ModelConfig = Field(ModelConfig(), description="the network and its arguments")
    loss: LossConfig = Field(LossConfig(), description="the training loss (from logits)")
    train: TrainConfig = Field(TrainConfig(), description="optimisation and the trainer")
    tracking: TrackingConfig = Field(TrackingConfig(), description="MLflow tracking")
    instances: InstanceConfig = Field(
        InstanceConfig(), description="from probabilities to one label per nucleus"
    )


def _describe_error(error: Any, section: type[BaseModel]) -> str:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location)
    if error["type"] == "extra_forbidden":
        parent: Any = section
        for part in location[:-1]:
            fields = getattr(parent, "model_fields", {})
            field = fields.get(part)
            parent = field.annotation if field is not None else None
        valid = sorted(getattr(parent, "model_fields", {}))
        return f"unknown key '{key}'; valid keys here: {', '.join(valid)}"
    given = error.get("input")
    if isinstance(given, dict):
        # A check across keys of a section: the message names them, the section is no value.
        return f"'{key}': {error['msg']}"
    return f"'{key}': {error['msg']} (got {given!r})"


def validate_config(raw: dict[str, Any]) -> Config:
    """Build a `Config` from a plain dict, turning validation errors into a `ConfigError`."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe_error(error, Config) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    _apply_task_defaults(config)
    _check_component_params(config)
    return config


def is_multiclass(data: DataConfig) -> bool:
    """Whether the masks hold classes (softmax over C channels) rather than a binary foreground:
    the cityscapes layout, a `data.num_classes`, or a YAML label mapping."""
    return (
        data.layout == "cityscapes"
        or data.num_classes is not None
        or data.labels.endswith((".yaml", ".yml"))
    )


def apply_multiclass_defaults(config: Config) -> None:
    """Multi-class segmentation trains with the seeds' "Total loss" (CE + 3 Dice), unless set."""
    multiclass = config.task == "segmentation" and is_multiclass(config.data)
    if multiclass and "name" not in config.loss.model_fields_set:
        config.loss = LossConfig(name="ce_dice")


def _apply_task_defaults(config: Config) -> None:
    """Classification runs default to the seed-004 CNN and cross-entropy, and multi-class
    segmentation to ce_dice, unless set."""
    apply_multiclass_defaults(config)
    if config.task == "segmentation" and config.data.layout == "volumes":
        if "name" not in config.model.model_fields_set:
            config.model.name = "unet3d"
        if config.model.name == "unet3d" and "params" not in config.model.model_fields_set:
            config.model.params = {}  # the 2D U-Net defaults (n_filters, batch_norm) do not apply
    if config.model.name == "smp" and "params" not in config.model.model_fields_set:
        config.model.params = {}  # nor to smp, whose own are a Unet with a ResNet-34 encoder
    if config.task != "classification":
        return
    if "name" not in config.model.model_fields_set:
        config.model.name = "cnn"
    if "params" not in config.model.model_fields_set:
        # The default params are the U-Net's; classifiers start from their own defaults.
        config.model.params = {}
    if "name" not in config.loss.model_fields_set:
        config.loss = LossConfig(name="ce")


def _check_component_params(config: Config) -> None:
    # Imported here: the registries import torch, which `seglab --help` must not pay for.
    from seglab.models import MODELS, model_parameters, model_task
    from seglab.objectives.losses import LOSSES, LossMode, loss_parameters

    if config.model.name in MODELS and model_task(config.model.name) != config.task:
        raise ConfigError(
            f"'model.name': {config.model.name} is a {model_task(config.model.name)} model but "
            f"task is {config.task}; set task={model_task(config.model.name)} or pick a "
            f"{config.task} model"
        )
    registries: list[tuple[str, dict[str, Any], Any, ModelConfig | LossConfig]] = [
        ("model", MODELS, model_parameters, config.model)
    ]
    if config.task == "classification":
        if config.loss.name != "ce":
            raise ConfigError("'loss.name': classification trains with cross-entropy: use ce")
        if config.loss.params:
            raise ConfigError("'loss.params': ce takes no parameters")
    else:
        # With layout auto the masks' kind (binary or cityscapes) is known once the data is
        # found: a multi-class loss name is checked as such here, and train() checks the rest.
        mode: LossMode = (
            "multiclass"
            if is_multiclass(config.data)
            or (config.data.layout == "auto" and config.loss.name in LOSSES["multiclass"])
            else "binary"
        )
        get_loss_params = functools.partial(loss_parameters, mode=mode)
        registries.append(("loss", LOSSES[mode], get_loss_params, config.loss))

    for kind, registry, get_params, section in registries:
        if section.name not in registry:
            raise ConfigError(
                f"'{kind}.name': unknown {kind} '{section.name}'; valid: {', '.join(registry)}"
            )
        accepted = get_params(section.name)
        for key in section.params:
            if key not in accepted:
                raise ConfigError(
                    f"unknown key '{kind}.params.{key}' for {kind} '{section.name}'; "
                    f"valid keys: {', '.join(accepted) or '(none)'}"
                )


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with `key.sub=value` overrides applied (values parsed as YAML)."""
    result = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML ({exc})") from None
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when `path` is None) and apply `overrides`.

    Example:
        >>> cfg = load_config(None, ["train.epochs=3", "model.params.n_filters=1"])
        >>> cfg.train.epochs
        3
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config file; give a YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: config file cannot be read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        raw = loaded or {}
    return validate_config(
        apply_overrides(with_default_params(raw, overrides or []), overrides or [])
    )


def with_default_params(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`raw` with the model's default `params` written out when overrides set single keys of
    them (`model.params.n_filters=8`) and `raw` has none, so that those keys change the defaults
    (e.g. the U-Net's `batch_norm: true`) instead of replacing them all."""
    keys = [o for o in overrides if o.strip().startswith("model.params.")]
    if not keys or "params" in (raw.get("model") or {}):
        return raw
    rest = [o for o in overrides if o not in keys]
    defaults = validate_config(apply_overrides(raw, rest)).model.params
    return apply_overrides(raw, [f"model.params={json.dumps(defaults)}"])


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain JSON/YAML-friendly dict (paths as strings, tuples as lists)."""
    return config.model_dump(mode="json")


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from seglab.atomic_files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False))


def commented_yaml(config: Config, width: int = 100) -> str:
    """The whole config as YAML, each key with a comment saying what it is (its pydantic field
    description): beside the key when it fits in `width` columns, else above it. It loads back
    to the same config.

    Example:
        >>> print(commented_yaml(Config()).splitlines()[3])
        seed: 0  # seeds Python, NumPy and torch
    """
    lines: list[str] = []
    _commented_section(config, config_to_dict(config), 0, lines, width)
    return "\n".join(lines) + "\n"


def _commented_section(
    section: BaseModel, values: dict[str, Any], depth: int, lines: list[str], width: int
) -> None:
    indent = "  " * depth
    for name, field in type(section).model_fields.items():
        child = getattr(section, name)
        if isinstance(child, BaseModel):
            line = f"{indent}{name}:"
        else:
            # Flow style for lists and mappings: [1.0, 99.0], {n_filters: 2}.
            text = yaml.safe_dump(
                values[name], default_flow_style=True, width=10_000, sort_keys=False
            )
            line = f"{indent}{name}: {text.removesuffix(chr(10) + '...' + chr(10)).strip()}"
        description = field.description or ""
        if description and len(f"{line}  # {description}") <= width:
            line = f"{line}  # {description}"
        elif description:
            wrapped = textwrap.wrap(description, width - len(indent) - 2)
            lines += [f"{indent}# {text}" for text in wrapped]
        lines.append(line)
        if isinstance(child, BaseModel):
            _commented_section(child, values[name], depth + 1, lines, width)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; used to log the whole config as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
