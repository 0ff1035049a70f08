"""`Predictor`: a model plus the pre-processing of its bundle, turning any image into a mask."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglab.inference.base import BasePredictor, Prediction
from seglab.precision import autocast, channels_last_format, inference_dtype

__all__ = ["Prediction", "Predictor", "bf16_weights", "resolve_device", "torch_forward"]

# Normalisation layers keep float32 parameters in `bf16_weights`, as autocast leaves them.
NORM_LAYERS = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
    torch.nn.InstanceNorm1d,
    torch.nn.InstanceNorm2d,
    torch.nn.InstanceNorm3d,
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_weights(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with bf16 parameters and buffers, but for the normalisation layers'.

    It computes what bf16 autocast computes (convolutions in bf16 from bf16-rounded weights,
    normalisation with float32 parameters), but casts the weights once instead of at every
    call: the seed U-Net's bf16 inference ran 1.14x faster at batch 8 on a 2-core AMX Xeon
    (`benchmarks/torch_ab.py`), its outputs bit-identical. The copy leaves `model` as it was.
    """
    copied = copy.deepcopy(model).to(torch.bfloat16)
    for module in copied.modules():
        if isinstance(module, NORM_LAYERS):
            module.float()
    return copied


def torch_forward(
    model: torch.nn.Module,
    device: str = "auto",
    multiclass: bool = False,
    precision: str = "auto",
    compile: bool = False,
) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy forward around a torch model of images or volumes: `(N, C, *spatial)` float32 in,
    `(N, K, *spatial)` float32 probabilities out (sigmoid, or softmax over K for multi-class).

    Eval and inference mode, the channels-last layout (oneDNN's and cuDNN's fastest), bf16
    where the hardware has it (`precision`, see `seglab.precision.inference_dtype`; on a CPU
    through a bf16 copy of the weights, see `bf16_weights`, elsewhere by autocast), and on a
    GPU page-locked inputs copied without blocking. With `compile`, `torch.compile` with
    freezing (weights folded in as constants and pre-packed, ReLUs fused into the
    convolutions): the first call of each input shape compiles (seconds to a minute), then
    the seed U-Net ran 2.1x faster in bf16 and 1.25x in fp32 at batch 8 on a 2-core AMX Xeon.
    """
    target = resolve_device(device)
    dtype = inference_dtype(precision, target)
    model = model.eval().to(target)
    weights = next(model.parameters(), None)
    if weights is not None:
        model = model.to(memory_format=channels_last_format(weights.ndim))  # type: ignore[call-overload]
    input_dtype, autocast_dtype = torch.float32, dtype
    if dtype == torch.bfloat16 and target.type == "cpu":
        model, input_dtype, autocast_dtype = bf16_weights(model), dtype, torch.float32
    network = compiled(model) if compile else model

    def forward(batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch)
        if target.type == "cuda":
            tensor = tensor.pin_memory().to(target, non_blocking=True)
        else:
            tensor = tensor.to(target, input_dtype)
        tensor = tensor.contiguous(memory_format=channels_last_format(tensor.ndim))
        # Freezing needs autograd off, which inference mode is not to torch.compile.
        with torch.no_grad() if compile else torch.inference_mode():
            with (
                autocast(target, autocast_dtype),
                frozen() if compile else contextlib.nullcontext(),
            ):
                logits = network(tensor)
            logits = logits.float()
            probabilities = logits.softmax(1) if multiclass else torch.sigmoid(logits)
            return probabilities.cpu().contiguous().numpy()

    return forward


def compiled(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`torch.compile` of `model` for inference; call it inside `frozen()`."""
    return torch.compile(model)


def frozen() -> contextlib.AbstractContextManager[None]:
    """Inductor's freezing on while a compiled model first runs (compiles) an input shape."""
    import torch._inductor.config

    return torch._inductor.config.patch(freezing=True)


class Predictor(BasePredictor):
    """Applies a segmentation model (torch) to images of any size.

    Args:
        model: The network (logits out).
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).
        device: "auto", "cpu", "cuda", ...
        precision: "auto" (bf16 where the CPU or GPU computes it natively, else fp32; fp16 on
            GPUs without bf16), "32" or "bf16".
        compile: `torch.compile` the network with freezing (see `torch_forward`): faster
            after a first call per input shape that compiles.

    Example:
        >>> predictor = Predictor.from_bundle("runs/demo/run/model")  # doctest: +SKIP
        >>> predictor.predict(image).mask.shape == image.shape[:2]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        metadata: dict[str, Any],
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
    ):
        super().__init__(metadata)
        self.device = resolve_device(device)
        self.model = model
        self._forward = torch_forward(model, device, self.kind.multiclass, precision, compile)

    @classmethod
    def from_bundle(
        cls, path: str | Path, device: str = "auto", precision: str = "auto", compile: bool = False
    ) -> Predictor:
        from seglab.bundle import load_bundle

        model, metadata = load_bundle(path)
        return cls(model, metadata, device, precision, compile)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, K, H, W) probabilities, with torch."""
        return self._forward(batch)
