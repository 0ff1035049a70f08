"""Networks: the `MODELS` registry, `create_model` and model inspection helpers.

Every model takes `(N, in_channels, H, W)` images. Segmentation models (the U-Nets) return
`(N, num_classes, H, W)` logits; classification models (a class attribute `task =
"classification"`) return `(N, num_classes)` logits. `model_task` tells which. Volume models (a
class attribute `spatial_dims = 3`, e.g. `unet3d`) take `(N, in_channels, D, H, W)` volumes and
return `(N, num_classes, D, H, W)` logits; `model_spatial_dims` tells which.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from seglab.models.classifiers import CNN, MLP, MLPDropout
from seglab.models.unet import UNet, UNetExtended
from seglab.models.unet3d import UNet3D
from seglab.models.unet_mini import UNetMini

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "MLPDropout",
    "UNet",
    "UNet3D",
    "UNetExtended",
    "UNetMini",
    "count_parameters",
    "create_model",
    "model_parameters",
    "model_spatial_dims",
    "model_summary",
    "model_task",
]

MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "unet_extended": UNetExtended,
    "unet_mini": UNetMini,
    "unet3d": UNet3D,
    "mlp": MLP,
    "mlp_dropout": MLPDropout,
    "cnn": CNN,
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


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model from its registry name and constructor arguments (e.g. from a YAML config).

    Args:
        name: A key of `MODELS`, e.g. `"unet"`.
        **kwargs: Constructor arguments; omitted ones take the model's defaults.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: The name is unknown, an argument is not accepted by the model, or the model
            rejects an argument's value.

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
    return model_class(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (elements, not tensors) of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _shape_of(output: object) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, list | tuple):
        return ", ".join(_shape_of(item) for item in output)
    return type(output).__name__


def model_summary(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """A plain-text table of a model's modules, their output shapes and parameter counts.

    One forward pass on zeros is run under `torch.no_grad()` in eval mode (so batch-norm statistics
    are left untouched); the model's previous train/eval modes are restored afterwards. Rows follow
    the order in which modules are called; a block's count includes the modules indented below it.

    Args:
        model: The model to describe.
        input_shape: Shape of the dummy input, batch included, e.g. `(1, 3, 128, 128)`.

    Returns:
        The table followed by total and trainable parameter counts and the estimated size of the
        parameters and buffers in MB (2**20 bytes).

    Example:
        >>> print(model_summary(UNet(n_filters=1, depth=2), (1, 3, 64, 64)))  # doctest: +SKIP
    """
    rows: dict[str, list[str]] = {}
    handles = []

    def track(name: str, module: nn.Module) -> None:
        def before(_module: nn.Module, _inputs: object) -> None:
            # Pre-hooks fire in call order, so a block is listed before the layers inside it.
            rows.setdefault(name, [name, type(module).__name__, "", ""])

        def after(_module: nn.Module, _inputs: object, output: object) -> None:
            if not rows[name][2]:
                rows[name][2] = _shape_of(output)
                rows[name][3] = f"{sum(p.numel() for p in module.parameters()):,}"

        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))

    for name, module in model.named_modules():
        if name:  # the root is the totals line
            track(name, module)

    modes = {module: module.training for module in model.modules()}
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            output = model(torch.zeros(input_shape, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training

    header = ["Module", "Type", "Output shape", "Params"]
    table = [header]
    for name, row in rows.items():
        # Indent under each enclosing module that ran (containers like ModuleList never run).
        parts = name.split(".")
        level = sum(".".join(parts[:i]) in rows for i in range(1, len(parts)))
        table.append(["  " * level + name, *row[1:]])
    widths = [max(len(row[i]) for row in table) for i in range(4)]

    def line(row: list[str]) -> str:
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths[:3], strict=True)]
        return "  ".join([*cells, row[3].rjust(widths[3])])

    rule = "-" * len(line(header))
    total = sum(p.numel() for p in model.parameters())
    size_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return "\n".join(
        [
            line(header),
            rule,
            *(line(row) for row in table[1:]),
            rule,
            f"Input shape: {tuple(input_shape)}",
            f"Output shape: {_shape_of(output)}",
            f"Total params: {total:,}",
            f"Trainable params: {count_parameters(model):,}",
            f"Estimated size (params + buffers): {size_bytes / 2**20:.2f} MB",
        ]
    )
