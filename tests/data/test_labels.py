"""Label tables: the official Cityscapes table, its mappings, YAML mappings, colorize."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seglab.data.labels import (
    CITYSCAPES_LABELS,
    LabelMapping,
    cityscapes_mapping,
    colorize,
    index_mapping,
    mapping_from_file,
    resolve_mapping,
)
from seglab.errors import BundleError, ConfigError

# The official table (cityscapesScripts, helpers/labels.py), typed here independently:
# id: (name, category, categoryId, trainId, ignoreInEval, color).
OFFICIAL = {
    0: ("unlabeled", "void", 0, 255, True, (0, 0, 0)),
    1: ("ego vehicle", "void", 0, 255, True, (0, 0, 0)),
    2: ("rectification border", "void", 0, 255, True, (0, 0, 0)),
    3: ("out of roi", "void", 0, 255, True, (0, 0, 0)),
    4: ("static", "void", 0, 255, True, (0, 0, 0)),
    5: ("dynamic", "void", 0, 255, True, (111, 74, 0)),
    6: ("ground", "void", 0, 255, True, (81, 0, 81)),
    7: ("road", "flat", 1, 0, False, (128, 64, 128)),
    8: ("sidewalk", "flat", 1, 1, False, (244, 35, 232)),
    9: ("parking", "flat", 1, 255, True, (250, 170, 160)),
    10: ("rail track", "flat", 1, 255, True, (230, 150, 140)),
    11: ("building", "construction", 2, 2, False, (70, 70, 70)),
    12: ("wall", "construction", 2, 3, False, (102, 102, 156)),
    13: ("fence", "construction", 2, 4, False, (190, 153, 153)),
    14: ("guard rail", "construction", 2, 255, True, (180, 165, 180)),
    15: ("bridge", "construction", 2, 255, True, (150, 100, 100)),
    16: ("tunnel", "construction", 2, 255, True, (150, 120, 90)),
    17: ("pole", "object", 3, 5, False, (153, 153, 153)),
    18: ("polegroup", "object", 3, 255, True, (153, 153, 153)),
    19: ("traffic light", "object", 3, 6, False, (250, 170, 30)),
    20: ("traffic sign", "object", 3, 7, False, (220, 220, 0)),
    21: ("vegetation", "nature", 4, 8, False, (107, 142, 35)),
    22: ("terrain", "nature", 4, 9, False, (152, 251, 152)),
    23: ("sky", "sky", 5, 10, False, (70, 130, 180)),
    24: ("person", "human", 6, 11, False, (220, 20, 60)),
    25: ("rider", "human", 6, 12, False, (255, 0, 0)),
    26: ("car", "vehicle", 7, 13, False, (0, 0, 142)),
    27: ("truck", "vehicle", 7, 14, False, (0, 0, 70)),
    28: ("bus", "vehicle", 7, 15, False, (0, 60, 100)),
    29: ("caravan", "vehicle", 7, 255, True, (0, 0, 90)),
    30: ("trailer", "vehicle", 7, 255, True, (0, 0, 110)),
    31: ("train", "vehicle", 7, 16, False, (0, 80, 100)),
    32: ("motorcycle", "vehicle", 7, 17, False, (0, 0, 230)),
    33: ("bicycle", "vehicle", 7, 18, False, (119, 11, 32)),
    -1: ("license plate", "vehicle", 7, -1, True, (0, 0, 142)),
}
# Seed 001's class_to_group (labelId -> group 0..7); it leaves out ids 3..6, void as well.
SEED_001 = {-1: 0, 0: 0, 1: 0, 2: 0, 7: 1, 8: 1, 9: 1, 10: 1, 11: 2, 12: 2, 13: 2, 14: 2, 15: 2}
SEED_001 |= {16: 2, 17: 3, 18: 3, 19: 3, 20: 3, 21: 4, 22: 4, 23: 5, 24: 6, 25: 6}
SEED_001 |= {i: 7 for i in range(26, 34)}
ALL_IDS = np.arange(34, dtype=np.uint8)[None, :]  # one pixel per label id 0..33


def test_table_matches_the_official_list() -> None:
    assert len(CITYSCAPES_LABELS) == 35
    table = {
        lab.id: (lab.name, lab.category, lab.category_id, lab.train_id, lab.ignore_in_eval,
                 lab.color)
        for lab in CITYSCAPES_LABELS
    }  # fmt: skip
    assert table == OFFICIAL


def test_categories_ignoring_void() -> None:
    mapping = cityscapes_mapping("categories", void="ignore")
    assert mapping.names == ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
    assert mapping.num_classes == 7 and mapping.ignore_index == 255 and mapping.void_index is None
    expected = [OFFICIAL[i][2] - 1 if OFFICIAL[i][2] > 0 else 255 for i in range(34)]
    assert mapping.apply(ALL_IDS)[0].tolist() == expected
    assert mapping.palette.tolist() == [
        [128, 64, 128], [70, 70, 70], [153, 153, 153], [107, 142, 35], [70, 130, 180],
        [220, 20, 60], [0, 0, 142],
    ]  # fmt: skip


def test_categories_with_void_as_class_reproduce_seed_001() -> None:
    mapping = cityscapes_mapping("categories", void="class")
    assert mapping.names[0] == "void" and mapping.num_classes == 8 and mapping.void_index == 0
    classes = mapping.apply(ALL_IDS)[0].tolist()
    assert classes == [OFFICIAL[i][2] for i in range(34)]
    assert all(classes[i] == group for i, group in SEED_001.items() if i >= 0)
    assert mapping.palette[0].tolist() == [0, 0, 0]


def test_train_ids() -> None:
    ignored = cityscapes_mapping("train_ids", void="ignore")
    assert ignored.num_classes == 19
    assert ignored.names[0] == "road" and ignored.names[13] == "car"
    assert ignored.names[18] == "bicycle"
    assert ignored.apply(ALL_IDS)[0].tolist() == [OFFICIAL[i][3] for i in range(34)]
    assert ignored.palette[13].tolist() == [0, 0, 142]  # car
    as_class = cityscapes_mapping("train_ids", void="class", ignore_index=200)
    assert as_class.num_classes == 20 and as_class.names[-1] == "void"
    assert as_class.void_index == 19 and as_class.ignore_index == 200
    expected = [19 if OFFICIAL[i][3] == 255 else OFFICIAL[i][3] for i in range(34)]
    assert as_class.apply(ALL_IDS)[0].tolist() == expected


def test_unknown_ids_become_void_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    raw = np.array([[7, 40, 40], [200, 26, 0]], np.uint8)
    with caplog.at_level(logging.WARNING, logger="seglab.data.labels"):
        ignored = cityscapes_mapping("categories", "ignore").apply(raw, "a_gtFine_labelIds.png")
        as_class = cityscapes_mapping("categories", "class").apply(raw)
    # Ignore: 7 -> flat 0, 26 -> vehicle 6, void id 0 and unknown 40, 200 -> 255.
    assert ignored.tolist() == [[0, 255, 255], [255, 6, 255]]
    # Class: flat 1, vehicle 7, void 0 (id 0 and the unknown values).
    assert as_class.tolist() == [[1, 0, 0], [0, 7, 0]]
    assert len(caplog.records) == 2  # once per call, not once per pixel
    message = caplog.records[0].getMessage()
    assert "a_gtFine_labelIds.png" in message and "3 pixels" in message
    assert "40, 200" in message


def test_known_values_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cityscapes_mapping("train_ids").apply(ALL_IDS)
    assert not caplog.records


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64])
def test_wide_and_negative_values_are_unknown(
    dtype: type, caplog: pytest.LogCaptureFixture
) -> None:
    raw: np.ndarray = np.array(
        [[7, 300], [26, -1 if np.dtype(dtype).kind == "i" else 65535]], dtype
    )
    with caplog.at_level(logging.WARNING):
        classes = cityscapes_mapping("categories").apply(raw)
    assert classes.dtype == np.uint8 and classes.tolist() == [[0, 255], [6, 255]]
    assert "2 pixels" in caplog.records[0].getMessage()


def test_apply_rejects_non_integer_masks() -> None:
    with pytest.raises(ValueError, match="2D integer"):
        cityscapes_mapping("categories").apply(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("kind", ["categories", "train_ids"])
@pytest.mark.parametrize("void", ["ignore", "class"])
def test_dict_round_trip_through_json(kind: str, void: str) -> None:
    mapping = cityscapes_mapping(kind, void)  # type: ignore[arg-type]
    again = LabelMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert again.names == mapping.names and again.void_index == mapping.void_index
    np.testing.assert_array_equal(again.palette, mapping.palette)
    np.testing.assert_array_equal(again.lut, mapping.lut)
    np.testing.assert_array_equal(again.known, mapping.known)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_void_class_is_ignore_shifted_by_one(raw: np.ndarray) -> None:
    # With void as class 0 every other category moves up by one: class = ignore + 1, void -> 0.
    ignored = cityscapes_mapping("categories", "ignore").apply(raw)
    as_class = cityscapes_mapping("categories", "class").apply(raw)
    expected = np.where(ignored == 255, 0, ignored.astype(int) + 1)
    np.testing.assert_array_equal(as_class, expected)
    assert set(np.unique(ignored).tolist()) <= {*range(7), 255}


def test_from_dict_without_values_takes_class_indices() -> None:
    mapping = LabelMapping.from_dict(
        {"names": ["a", "b"], "palette": [[0, 0, 0], [9, 9, 9]], "ignore_index": 255}
    )
    assert mapping.apply(np.array([[0, 1, 255]], np.uint8)).tolist() == [[0, 1, 255]]
    with pytest.raises(BundleError, match="names"):
        LabelMapping.from_dict({"palette": [], "ignore_index": 255})


def test_mapping_checks_its_tables() -> None:
    lut, known = np.zeros(256, np.uint8), np.zeros(256, bool)
    with pytest.raises(ValueError, match="ignore_index"):
        LabelMapping(("a", "b"), np.zeros((2, 3)), lut, 1, known)
    with pytest.raises(ValueError, match="palette"):
        LabelMapping(("a", "b"), np.zeros((3, 3)), lut, 255, known)
    known[0], lut[0] = True, 5
    with pytest.raises(ValueError, match="outside"):
        LabelMapping(("a", "b"), np.zeros((2, 3)), lut, 255, known)


def test_index_mapping(caplog: pytest.LogCaptureFixture) -> None:
    mapping = index_mapping(3, ignore_index=255)
    assert mapping.names == ("class_0", "class_1", "class_2")
    with caplog.at_level(logging.WARNING):
        classes = mapping.apply(np.array([[0, 1, 2, 255, 3, 3]], np.uint8), "m.png")
    assert classes.tolist() == [[0, 1, 2, 255, 255, 255]]
    assert "m.png: 2 pixels" in caplog.records[0].getMessage()


LABEL_FILE = """
classes:
  - {name: background, values: [0], color: [1, 2, 3]}
  - {name: cell, values: [1, 2]}
  - {name: big, values: [1000]}
void_values: [255]
"""


def test_yaml_mapping(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(LABEL_FILE)
    mapping = mapping_from_file(path, void="ignore", ignore_index=250)
    assert mapping.names == ("background", "cell", "big") and mapping.lut.shape == (65536,)
    assert mapping.palette[0].tolist() == [1, 2, 3]
    raw = np.array([[0, 1, 2], [1000, 255, 7]], np.uint16)
    with caplog.at_level(logging.WARNING):
        assert mapping.apply(raw).tolist() == [[0, 1, 1], [2, 250, 250]]
    assert "1 pixels" in caplog.records[0].getMessage()  # only 7 is unknown; 255 is void
    as_class = mapping_from_file(path, void="class")
    assert as_class.names[-1] == "void" and as_class.apply(raw).tolist() == [[0, 1, 1], [2, 3, 3]]
    again = LabelMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))
    np.testing.assert_array_equal(again.apply(raw), mapping.apply(raw))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("classes: {name: a}", "classes"),
        ("void_values: [1]", "classes"),
        ("classes: [{name: a, values: [0]}]\nextra: 1", "extra"),
        ("classes: [{name: a, values: [0], colour: [1, 2, 3]}]", "classes[0].colour"),
        ("classes: [{values: [0]}]", "classes[0].name"),
        ("classes: [{name: a, values: []}]", "classes[0].values"),
        ("classes: [{name: a, values: [70000]}]", "classes[0].values"),
        ("classes: [{name: a, values: [0]}, {name: b, values: [0]}]", "classes[1].values"),
        ("classes: [{name: a, values: [0]}, {name: a, values: [1]}]", "classes[1].name"),
        ("classes: [{name: a, values: [0], color: [1, 2]}]", "classes[0].color"),
        ("classes: [{name: a, values: [0]}]\nvoid_values: [0]", "void_values"),
        ("classes: [a: b", "data.labels"),
    ],
)
def test_bad_yaml_mapping(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "labels.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        mapping_from_file(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        mapping_from_file(tmp_path / "nope.yaml")


def test_resolve_mapping(tmp_path: Path) -> None:
    assert resolve_mapping("categories", "ignore", 255).num_classes == 7
    assert resolve_mapping("train_ids", "class", 255).num_classes == 20
    assert resolve_mapping("categories", "ignore", 255, 4, layout="folders").names[3] == "class_3"
    assert resolve_mapping("categories", "ignore", 255, None, layout="folders").num_classes == 7
    path = tmp_path / "m.yaml"
    path.write_text(LABEL_FILE)
    assert resolve_mapping(str(path), "ignore", 255).names[1] == "cell"
    with pytest.raises(ConfigError, match="'data.labels'.*categories, train_ids"):
        resolve_mapping("groups", "ignore", 255)
    with pytest.raises(ConfigError, match="'data.void'"):
        resolve_mapping("categories", "drop", 255)
    with pytest.raises(ConfigError, match="'data.ignore_index'"):
        resolve_mapping("categories", "class", 3)
    with pytest.raises(ConfigError, match="'data.num_classes'"):
        resolve_mapping("categories", "ignore", 4, 4, layout="folders")


def test_colorize() -> None:
    palette = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    labels = np.array([[0, 1], [255, 0]])
    expected = [[[10, 20, 30], [40, 50, 60]], [[0, 0, 0], [10, 20, 30]]]  # 255 -> black
    assert colorize(labels, palette, 255).tolist() == expected
    with pytest.raises(ValueError, match="has no colour"):
        colorize(np.array([[2]]), palette, 255)
