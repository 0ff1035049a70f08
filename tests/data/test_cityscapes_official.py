"""seglab's Cityscapes table and mappings against the dataset authors' own
(`cityscapesscripts.helpers.labels`)."""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers import labels as official

from seglab.data.cityscapes import CITYSCAPES_LABELS
from seglab.data.labels import cityscapes_mapping


def test_every_row_of_the_label_table_is_the_official_one() -> None:
    ours = {
        (
            row.name,
            row.id,
            row.train_id,
            row.category,
            row.category_id,
            row.has_instances,
            row.ignore_in_eval,
            tuple(row.color),
        )
        for row in CITYSCAPES_LABELS
    }
    theirs = {
        (
            row.name,
            row.id,
            row.trainId,
            row.category,
            row.categoryId,
            row.hasInstances,
            row.ignoreInEval,
            tuple(row.color),
        )
        for row in official.labels
    }
    assert ours == theirs


def test_the_train_id_mapping_gives_the_official_train_ids() -> None:
    mapping = cityscapes_mapping("train_ids")
    ids = np.array([[row.id for row in official.labels if row.id >= 0]], np.uint8)
    expected = [
        row.trainId if 0 <= row.trainId < 255 else 255 for row in official.labels if row.id >= 0
    ]
    assert mapping.apply(ids)[0].tolist() == expected
    trained = sorted((r for r in official.labels if 0 <= r.trainId < 255), key=lambda r: r.trainId)
    assert list(mapping.names) == [row.name for row in trained]
    assert mapping.palette.tolist() == [list(row.color) for row in trained]


def test_the_category_mapping_gives_the_official_category_ids() -> None:
    with_void = cityscapes_mapping("categories", void="class")
    without = cityscapes_mapping("categories", void="ignore")
    rows = [row for row in official.labels if row.id >= 0]
    ids = np.array([[row.id for row in rows]], np.uint8)
    assert with_void.apply(ids)[0].tolist() == [row.categoryId for row in rows]
    assert without.apply(ids)[0].tolist() == [
        row.categoryId - 1 if row.categoryId > 0 else 255 for row in rows
    ]
    categories = {row.categoryId: row.category for row in official.labels}
    assert list(with_void.names) == [categories[i] for i in range(8)]
