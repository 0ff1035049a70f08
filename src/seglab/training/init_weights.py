"""`model.init` (`seglab train --init BUNDLE`): start training from a bundle's weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seglab.errors import ConfigError

__all__ = ["load_initial_weights"]


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

    path = Path(init)
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
