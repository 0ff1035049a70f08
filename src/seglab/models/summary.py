"""Model inspection: parameter counts and a plain-text table of modules and output shapes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["count_parameters", "model_summary"]

HEADER = ["Module", "Type", "Output shape", "Params"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (elements, not tensors) of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_summary(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """A plain-text table of a model's modules, their output shapes and parameter counts.

    One forward pass on zeros is run under `torch.no_grad()` in eval mode by a copy of the model on
    PyTorch's meta device (shapes without storage), so neither the model nor memory is touched,
    whatever the input size. Rows follow
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
    rows, output = _traced_rows(model, input_shape)
    line = _line_format(rows)
    rule = "-" * len(line(HEADER))
    total = sum(p.numel() for p in model.parameters())
    size_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return "\n".join(
        [
            line(HEADER),
            rule,
            *(line(row) for row in rows),
            rule,
            f"Input shape: {tuple(input_shape)}",
            f"Output shape: {_shape_of(output)}",
            f"Total params: {total:,}",
            f"Trainable params: {count_parameters(model):,}",
            f"Estimated size (params + buffers): {size_bytes / 2**20:.2f} MB",
        ]
    )


def _traced_rows(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[list[str]], object]:
    """One `[name, type, output shape, params]` row per module that ran, indented under the
    modules enclosing it, in call order; and the model's output."""
    rows: dict[str, list[str]] = {}
    # A copy on the meta device has shapes but no storage: the pass allocates nothing, whatever
    # the input size, and the model itself is left untouched.
    probe = copy.deepcopy(model).to("meta").eval()
    for name, module in probe.named_modules():
        if name:  # the root is the totals line
            _track(name, module, rows)
    reference = next(model.parameters(), None)
    dtype = reference.dtype if reference is not None else torch.float32
    with torch.no_grad():
        output = probe(torch.zeros(input_shape, device="meta", dtype=dtype))
    indented = []
    for name, row in rows.items():
        # Indent under each enclosing module that ran (containers like ModuleList never run).
        parts = name.split(".")
        level = sum(".".join(parts[:i]) in rows for i in range(1, len(parts)))
        indented.append(["  " * level + name, *row[1:]])
    return indented, output


def _track(
    name: str, module: nn.Module, rows: dict[str, list[str]]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks that record `module`'s row into `rows` when it first runs."""

    def before(_module: nn.Module, _inputs: object) -> None:
        # Pre-hooks fire in call order, so a block is listed before the layers inside it.
        rows.setdefault(name, [name, type(module).__name__, "", ""])

    def after(_module: nn.Module, _inputs: object, output: object) -> None:
        if not rows[name][2]:
            rows[name][2] = _shape_of(output)
            rows[name][3] = f"{sum(p.numel() for p in module.parameters()):,}"

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


def _line_format(rows: list[list[str]]) -> Callable[[list[str]], str]:
    """Formats a row in columns as wide as the header's and `rows`' widest cells."""
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(4)]

    def line(row: list[str]) -> str:
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths[:3], strict=True)]
        return "  ".join([*cells, row[3].rjust(widths[3])])

    return line


def _shape_of(output: object) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, list | tuple):
        return ", ".join(_shape_of(item) for item in output)
    return type(output).__name__
