"""`model.init` (`seglab train --init BUNDLE`): start training from a bundle's weights."""

from __future__ import annotations

import json
from typing import Any

import torch

from seglab.errors import ConfigError

__all__ = ["init_overrides", "load_initial_weights"]


def init_overrides(init: str) -> list[str]:
    """What `--init BUNDLE` sets besides its weights: the bundle's architecture (model name and
    parameters, input channels included), target and input normalisation, as `key=value`
    overrides that later ones (`--set`) may still change.

    Example:
        >>> init_overrides("nuclei")[0]
        'model.name="unet"'
    """
    from seglab.bundle import read_metadata
    from seglab.pretrained import bundle_path

    metadata = read_metadata(bundle_path(init))
    params = {k: v for k, v in metadata["model"]["kwargs"].items() if k != "num_classes"}
    pre = metadata["preprocessing"]
    target = "boundary" if "borders" in (metadata.get("outputs") or []) else "mask"
    values = {
        "model.name": metadata["model"]["name"],
        "model.params": params,
        "data.target": target,
        "data.normalize": pre["normalize"],
        "data.percentiles": list(pre["percentiles"]),
        "data.views": pre.get("views"),
    }
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def load_initial_weights(
    model: torch.nn.Module, model_name: str, model_kwargs: dict[str, Any], init: str
) -> None:
    """Copy the weights of the bundle folder `init` into `model`, which this run built as
    `model_name(**model_kwargs)`.

    Raises:
        ConfigError: The bundle's architecture differs (naming each differing argument and how
            to match it), or its weights do not fit the model.
    """
    from seglab.bundle import WEIGHTS, read_metadata
    from seglab.models import bundle_kwargs
    from seglab.pretrained import bundle_path

    path = bundle_path(init)
    metadata = read_metadata(path)
    theirs = metadata["model"]
    # As the bundle recorded them: with what the model resolved (an smp model's arch, mean, ...).
    model_kwargs = bundle_kwargs(model_name, model, model_kwargs)
    differing = {
        key: (theirs["kwargs"].get(key), model_kwargs.get(key))
        for key in sorted(set(theirs["kwargs"]) | set(model_kwargs))
        if theirs["kwargs"].get(key) != model_kwargs.get(key)
    }
    if theirs["name"] != model_name or differing:
        listed = ", ".join(
            f"{key}: {a} in the bundle, {b} here" for key, (a, b) in differing.items()
        )
        name = f"model {theirs['name']} in the bundle, {model_name} here; " * (
            theirs["name"] != model_name
        )
        raise ConfigError(
            f"model.init={init}: {path} holds another architecture ({name}{listed}); train the "
            f"same one (--set model.name={theirs['name']} and model.params as in its seglab.json) "
            "or start from scratch"
        )
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as exc:
        raise ConfigError(
            f"model.init={init}: {path / WEIGHTS}: {' '.join(str(exc).split())}"
        ) from None
