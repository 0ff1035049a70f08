"""`kind_of`: the one mapping from strings (config, bundle metadata) to the problem kind."""

from __future__ import annotations

import pytest

from seglab.config import load_config
from seglab.kinds import (
    BINARY,
    BINARY_VOLUMES,
    CLASSIFICATION,
    KINDS,
    MULTICLASS,
    MULTICLASS_VOLUMES,
    Kind,
    kind_of,
)


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ([], BINARY),
        (["data.layout=folders"], BINARY),
        (["data.num_classes=4"], MULTICLASS),
        (["data.layout=cityscapes"], MULTICLASS),
        (["data.labels=my_labels.yaml"], MULTICLASS),
        (["data.layout=volumes"], BINARY_VOLUMES),
        (["task=classification"], CLASSIFICATION),
    ],
)
def test_kind_of_a_config(overrides: list[str], kind: Kind) -> None:
    assert kind_of(load_config(None, overrides)) is kind


@pytest.mark.parametrize(
    ("metadata", "kind"),
    [
        ({}, BINARY),  # bundles written before `task` existed
        ({"task": "binary"}, BINARY),
        ({"task": "multiclass"}, MULTICLASS),
        ({"task": "binary", "spatial_dims": 3}, BINARY_VOLUMES),
        ({"task": "multiclass", "spatial_dims": 3}, MULTICLASS_VOLUMES),
        ({"task": "classification"}, CLASSIFICATION),
    ],
)
def test_kind_of_bundle_metadata(metadata: dict[str, object], kind: Kind) -> None:
    assert kind_of(metadata) is kind


def test_every_kind_is_named_once_and_consistent() -> None:
    assert len({k.name for k in KINDS}) == len(KINDS)
    for kind in KINDS:
        # A threshold only where a sigmoid output needs one; mIoU only for classes per pixel.
        assert kind.thresholded == (kind.task == "binary")
        assert (kind.metric == "miou") == (kind.multiclass and not kind.classification)
        assert kind.loss_mode == ("multiclass" if kind.multiclass else "binary")
        assert kind.volumes == (kind.spatial_dims == 3)


def test_every_kind_has_a_training_plug_with_the_protocols_methods() -> None:
    from seglab.training.kinds import TrainingKind, training_kind

    methods = [name for name in vars(TrainingKind) if not name.startswith("_") and name != "mro"]
    assert {"load", "task", "validate", "evaluate_test"} <= set(methods)
    plugs = {kind: training_kind(kind) for kind in KINDS}
    assert plugs[BINARY] is plugs[MULTICLASS]
    assert plugs[BINARY_VOLUMES] is plugs[MULTICLASS_VOLUMES]
    assert len(set(plugs.values())) == 3
    for plug in plugs.values():
        missing = [m for m in methods if not callable(getattr(plug, m, None))]
        assert not missing, f"{plug.__name__} lacks {missing}"
