"""Bundles written before the redesign (tests/bundles, commit d7c320a) still load and predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seglab.inference.loading import load_predictor
from seglab.kinds import BINARY, BINARY_VOLUMES, CLASSIFICATION, MULTICLASS, Kind

BUNDLES = Path(__file__).parent / "bundles"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("binary", BINARY),
        ("multiclass", MULTICLASS),
        ("volumes", BINARY_VOLUMES),
        ("classification", CLASSIFICATION),
    ],
)
def test_an_old_bundle_predicts_what_it_predicted(name: str, kind: Kind) -> None:
    folder = BUNDLES / name
    predictor = load_predictor(folder, backend="torch", precision="32")
    assert predictor.kind is kind
    image = np.load(folder / "input.npy")
    expected = np.load(folder / "probabilities.npy")
    if kind.spatial_dims == 2:
        predicted = predictor.predict_channels(image)
    else:
        predicted = predictor.predict_proba(image)
    assert predicted.shape == expected.shape
    # The old code recorded them under bf16 autocast where the CPU had native bf16, so they carry
    # its rounding, and oneDNN's kernels differ between CPUs (AMX or not): on an AMX Xeon the
    # fp32 prediction differs by at most 4.0e-3 (mean 6e-4, the volume bundle). A wrong weight,
    # normalisation or padding moves probabilities by tenths.
    difference = np.abs(predicted - expected)
    assert difference.max() < 1e-2
    assert difference.mean() < 1e-3
