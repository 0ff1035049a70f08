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
    predictor = load_predictor(folder)
    assert predictor.kind is kind
    image = np.load(folder / "input.npy")
    expected = np.load(folder / "probabilities.npy")
    if kind.spatial_dims == 2:
        predicted = predictor.predict_channels(image)
    else:
        predicted = predictor.predict_proba(image)
    assert predicted.shape == expected.shape
    np.testing.assert_allclose(predicted, expected, atol=1e-5)
