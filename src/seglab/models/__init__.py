"""Networks: the `MODELS` registry, `create_model` and model inspection helpers (`summary`).

Every model takes `(N, in_channels, H, W)` images. Segmentation models (the U-Nets) return
`(N, num_classes, H, W)` logits; classification models (a class attribute `task =
"classification"`) return `(N, num_classes)` logits. `model_task` tells which. Volume models (a
class attribute `spatial_dims = 3`, e.g. `unet3d`) take `(N, in_channels, D, H, W)` volumes and
return `(N, num_classes, D, H, W)` logits; `model_spatial_dims` tells which.

`smp` (`SmpModel`) needs the optional segmentation_models.pytorch, imported when one is built.
A model class may define `offline_kwargs(kwargs)`: the arguments that rebuild it without the
network (`SmpModel`: no pretrained encoder weights), used wherever weights come from elsewhere.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from seglab.models.classifiers import CNN, MLP, MLPDropout
from seglab.models.smp_models import SmpModel
from seglab.models.summary import count_parameters, model_summary
from seglab.models.unet import UNet, UNetExtended
from seglab.models.unet3d import UNet3D
from seglab.models.unet_mini import UNetMini

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "MLPDropout",
    "SmpModel",
    "UNet",
    "UNet3D",
    "UNetExtended",
    "UNetMini",
    "bundle_kwargs",
    "count_parameters",
    "create_model",
    "model_parameters",
    "model_spatial_dims",
    "model_summary",
    "model_task",
    "offline_kwargs",
]

MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "unet_extended": UNetExtended,
    "unet_mini": UNetMini,
    "unet3d": UNet3D,
    "mlp": MLP,
    "mlp_dropout": MLPDropout,
    "cnn": CNN,
    "smp": SmpModel,
}


def _model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_parameters(name: str) -> dict[str, object]:
    """The constructor arguments of a model and their defaults.

    Args:
        name: A key of `MODELS`.

    Returns:
        `{argument: default}` in signature order; the config layer checks `model.params` against it.

    Example:
        >>> model_parameters("unet")["n_filters"]
        4
    """
    signature = inspect.signature(_model_class(name))
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def model_task(name: str) -> str:
    """The task a model solves: `"classification"` or `"segmentation"` (the default).

    Example:
        >>> model_task("cnn"), model_task("unet")
        ('classification', 'segmentation')
    """
    return str(getattr(_model_class(name), "task", "segmentation"))


def model_spatial_dims(name: str) -> int:
    """The spatial axes a model convolves: 3 for volume models, 2 (the default) for images.

    Example:
        >>> model_spatial_dims("unet3d"), model_spatial_dims("unet")
        (3, 2)
    """
    return int(getattr(_model_class(name), "spatial_dims", 2))


def offline_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments that build the model without touching the network.

    A bundle's weights (or the meta device's nothing) replace whatever pretrained weights the
    arguments ask for, so those are never downloaded: `SmpModel` is built with
    `encoder_weights=None`. Other models take their arguments unchanged.

    Example:
        >>> offline_kwargs("smp", {"encoder": "resnet18", "encoder_weights": "imagenet"})
        {'encoder': 'resnet18', 'encoder_weights': None}
        >>> offline_kwargs("unet", {"n_filters": 2})
        {'n_filters': 2}
    """
    rebuild = getattr(_model_class(name), "offline_kwargs", None)
    return dict(kwargs) if rebuild is None else dict(rebuild(kwargs))


def bundle_kwargs(name: str, model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments a bundle records for `model`, built from `kwargs`.

    They rebuild it offline (`offline_kwargs`), and name what the model resolved itself (a
    method `resolved_kwargs()`): an `SmpModel`'s architecture, encoder and input `mean` and
    `std` (the pretrained encoder's), so `seglab.json` shows them.
    """
    resolve = getattr(model, "resolved_kwargs", None)
    resolved = resolve() if callable(resolve) else {}
    return offline_kwargs(name, {**kwargs, **resolved})


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model from its registry name and constructor arguments (e.g. from a YAML config).

    Args:
        name: A key of `MODELS`, e.g. `"unet"`.
        **kwargs: Constructor arguments; omitted ones take the model's defaults.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: The name is unknown, an argument is not accepted by the model, the model
            rejects an argument's value, or training it would need more memory than is free.

    Example:
        >>> model = create_model("unet", in_channels=1, num_classes=3, n_filters=2)
        >>> model(torch.zeros(1, 1, 40, 40)).shape
        torch.Size([1, 3, 40, 40])
    """
    model_class = _model_class(name)
    accepted = model_parameters(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} does not accept {', '.join(map(repr, unknown))}; "
            f"accepted arguments: {', '.join(accepted)}"
        )
    check_fits_in_memory(name, model_class, kwargs)
    return model_class(**kwargs)


# Bytes per parameter to train: fp32 weights, their gradients and Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 16


def check_fits_in_memory(name: str, model_class: type[nn.Module], kwargs: dict[str, Any]) -> None:
    """Refuse a model whose training state alone would not fit in the free RAM (models are
    built on the CPU); the model is first built on the meta device, which allocates nothing."""
    from seglab.planner import available_ram_bytes

    with torch.device("meta"):
        probe = model_class(**offline_kwargs(name, kwargs))
    needed = count_parameters(probe) * TRAINING_BYTES_PER_PARAMETER
    try:
        free = available_ram_bytes()
    except OSError:
        return
    if needed > free:
        raise ValueError(
            f"model {name!r} with {kwargs} would need {needed / 2**30:.1f} GiB for its weights, "
            f"gradients and optimiser state; {free / 2**30:.1f} GiB is free. "
            "Use a smaller n_filters or depth (smp: a smaller encoder)"
        )
