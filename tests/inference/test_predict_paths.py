"""`predict_paths`: one entry for every kind; options a kind has no use for are refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from seglab.errors import ConfigError
from seglab.inference.predict_paths import PredictOptions, predict_paths
from seglab.kinds import BINARY_VOLUMES, CLASSIFICATION


@pytest.mark.parametrize(
    ("kind", "options", "named"),
    [
        (BINARY_VOLUMES, PredictOptions(instances=True), "--instances"),
        (BINARY_VOLUMES, PredictOptions(rle=Path("s.csv"), workers=2), "--rle, --workers"),
        (CLASSIFICATION, PredictOptions(overlays=True), "--overlays"),
        (CLASSIFICATION, PredictOptions(probabilities=True), "--probabilities"),
    ],
)
def test_options_of_2d_images_are_refused_for_other_kinds(
    kind: object, options: PredictOptions, named: str, tmp_path: Path
) -> None:
    predictor = SimpleNamespace(kind=kind)
    with pytest.raises(ConfigError, match=named) as error:
        predict_paths(predictor, [tmp_path], tmp_path / "out", options)
    assert kind.name in str(error.value)  # type: ignore[attr-defined]
    assert not (tmp_path / "out").exists()
