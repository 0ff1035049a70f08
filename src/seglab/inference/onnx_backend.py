"""`OnnxPredictor`: a bundle's `model.onnx` run by ONNX Runtime, with the bundle's pre-processing.

Nothing on this path imports torch (`BasePredictor`, the transforms and the views are NumPy and
OpenCV), so a deployment needs `onnxruntime` only and starts in a fraction of torch's import
time. `seglab.deploy.export.export_onnx` writes the file, with the sigmoid inside the graph.

Example:
    >>> predictor = OnnxPredictor.from_bundle("runs/nuclei/model")  # doctest: +SKIP
    >>> predictor.predict(image).mask.shape == image.shape[:2]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from seglab.errors import BundleError
from seglab.inference.base import BasePredictor

__all__ = ["ONNX_FILE", "OnnxPredictor", "session_options"]

# Also `seglab.deploy.export.ONNX_FILE`; repeated so that this module never imports the
# exporter (torch).
ONNX_FILE = "model.onnx"


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ONNX Runtime settings for batch-1 CPU inference of a convolutional network.

    Args:
        threads: Threads inside one operator; None uses `os.cpu_count()`. ONNX Runtime's guidance
            is one per physical core; `os.cpu_count()` counts logical CPUs, which equals the
            physical cores on machines without SMT (such as the 2-core build machine) and
            oversubscribes by 2x with hyper-threading, where passing `threads` is better.

    Returns:
        Options with all graph optimisations (conv + activation fusion, constant folding,
        layout transformation to NCHWc) and one inter-operator thread: a U-Net is a chain of
        dependent operators, so parallel branches have nothing to run.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxPredictor(BasePredictor):
    """Applies an exported binary segmentation model (ONNX Runtime, CPU) to images of any size.

    Args:
        session: A session on a graph from `seglab.deploy.export.export_onnx`: input "image"
            `(N, C, H, W)` float32, output `(N, K, H, W)` probabilities.
        metadata: The bundle's `seglab.json` content (pre-processing and threshold).

    Example:
        >>> predictor = OnnxPredictor.from_bundle("runs/nuclei/model", threads=2)  # doctest: +SKIP
        >>> predictor.predict_proba(image).shape == image.shape[:2]  # doctest: +SKIP
    """

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any]) -> None:
        super().__init__(metadata)
        self.session = session
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def from_bundle(cls, path: str | Path, threads: int | None = None) -> OnnxPredictor:
        """Open `<path>/model.onnx` with the settings of `session_options`.

        Args:
            path: A bundle folder that `seglab export` has been run on.
            threads: Intra-operator threads; None uses `os.cpu_count()`.

        Raises:
            BundleError: The folder is not a bundle, has no `model.onnx`, its `model.onnx` or
                weights are not those of the export (SHA-256 in `seglab.json`), or ONNX
                Runtime cannot load it.
        """
        from seglab.bundle import check_onnx_digests, read_metadata

        path = Path(path)
        metadata = read_metadata(path)
        onnx_path = path / ONNX_FILE
        if not onnx_path.is_file():
            raise BundleError(
                f"{onnx_path}: missing; run `seglab export --model {path}` first, "
                f"or use --backend torch"
            )
        check_onnx_digests(path, metadata.get("onnx", {}))
        try:
            session = ort.InferenceSession(
                str(onnx_path),
                sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ONNX Runtime raises its own exception types per failure
            raise BundleError(
                f"{onnx_path}: ONNX Runtime cannot load it ({exc}); "
                f"run `seglab export --model {path}` again"
            ) from None
        return cls(session, metadata)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> (N, K, H, W) probabilities, with ONNX Runtime."""
        # ONNX Runtime rejects a float64 array instead of casting it.
        data = np.ascontiguousarray(batch, dtype=np.float32)
        (probabilities,) = self.session.run(None, {self.input_name: data})
        return np.asarray(probabilities, dtype=np.float32)
