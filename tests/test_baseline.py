"""The classical Otsu baseline of seed 003."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.filters import threshold_otsu

from seglab.baseline import BASELINES, OtsuBaseline, create_baseline
from seglab.config import InstanceConfig
from seglab.data.synthetic import make_nuclei

Pairs = list[tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def fluorescence() -> Pairs:
    return make_nuclei(10, size=128, seed=0, variant="fluorescence")


@pytest.fixture(scope="module")
def brightfield() -> Pairs:
    return make_nuclei(10, size=128, seed=0, variant="brightfield")


def _mean_dice(baseline: OtsuBaseline, pairs: Pairs) -> float:
    scores = []
    for image, labels in pairs:
        predicted, truth = baseline.predict(image).mask, labels > 0
        scores.append(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))
    return float(np.mean(scores))


def test_otsu_segments_both_modalities(fluorescence: Pairs, brightfield: Pairs) -> None:
    baseline = OtsuBaseline()
    assert _mean_dice(baseline, fluorescence) >= 0.8
    assert _mean_dice(baseline, brightfield) >= 0.8


def test_without_inversion_brightfield_fails(brightfield: Pairs) -> None:
    # Dark nuclei on a bright background: Otsu then keeps the background.
    assert _mean_dice(OtsuBaseline(invert="never"), brightfield) < 0.5


def test_forced_inversion_breaks_fluorescence(fluorescence: Pairs) -> None:
    assert _mean_dice(OtsuBaseline(invert="always"), fluorescence) < 0.5


def test_prediction_types_and_consistency(fluorescence: Pairs) -> None:
    image = fluorescence[0][0]
    prediction = OtsuBaseline().predict(image)
    assert prediction.probabilities.shape == image.shape[:2]
    assert prediction.probabilities.dtype == np.float32
    assert 0.0 <= prediction.probabilities.min() <= prediction.probabilities.max() <= 1.0
    assert prediction.mask.dtype == np.bool_
    labels = prediction.instances
    assert labels is not None and labels.dtype == np.int32
    # Sequential: every label 0..N is used, so N is the number of nuclei.
    np.testing.assert_array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert labels.max() > 1
    np.testing.assert_array_equal(prediction.mask, labels > 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_a_constant_image_gives_an_empty_mask(dtype: type) -> None:
    prediction = OtsuBaseline().predict(np.full((32, 32, 3), 7, dtype))
    assert not prediction.mask.any()
    assert prediction.instances is not None and not prediction.instances.any()


def test_grayscale_and_16_bit_inputs_give_the_same_mask(fluorescence: Pairs) -> None:
    image = fluorescence[1][0]
    baseline = OtsuBaseline()
    reference = baseline.predict(image).mask
    # The percentile stretch makes the result independent of the bit depth.
    np.testing.assert_array_equal(baseline.predict(image.astype(np.uint16) * 257).mask, reference)
    assert baseline.predict(image.mean(axis=2)).mask.shape == reference.shape


def test_an_explicit_threshold_replaces_otsus_cut(fluorescence: Pairs) -> None:
    image = fluorescence[2][0]
    # Nothing after the cut changes the mask: no opening, no hole filling, no size filter.
    settings = InstanceConfig(method="components", min_area=0, fill_holes=False)
    baseline = OtsuBaseline(opening_radius=0, instances=settings)
    assert baseline.threshold == 0.5
    intensity = baseline.predict_proba(image)
    np.testing.assert_array_equal(baseline.predict(image, threshold=0.3).mask, intensity >= 0.3)
    np.testing.assert_array_equal(
        baseline.predict(image).mask, intensity > threshold_otsu(intensity)
    )


def test_opening_radius_zero_keeps_more_specks(fluorescence: Pairs) -> None:
    image = fluorescence[3][0]
    plain = OtsuBaseline(opening_radius=0, instances=InstanceConfig(min_area=0)).predict(image)
    opened = OtsuBaseline(opening_radius=2, instances=InstanceConfig(min_area=0)).predict(image)
    assert plain.mask.sum() > opened.mask.sum()


def test_metadata_is_json_and_rebuilds_the_same_baseline(brightfield: Pairs) -> None:
    baseline = OtsuBaseline(sigma=1.5, invert="auto", instances=InstanceConfig(min_area=5))
    metadata = json.loads(json.dumps(baseline.metadata))
    assert metadata["format"] == "seglab-bundle" and metadata["format_version"] == 1
    assert metadata["model"]["name"] == "otsu"
    assert metadata["model"]["kwargs"]["instances"]["min_area"] == 5
    assert metadata["instances"] == metadata["model"]["kwargs"]["instances"]
    assert metadata["threshold"] == baseline.threshold
    assert metadata["preprocessing"]["views"] == ["raw"]
    rebuilt = create_baseline(metadata["model"]["name"], **metadata["model"]["kwargs"])
    image = brightfield[0][0]
    expected, actual = baseline.predict(image), rebuilt.predict(image)
    np.testing.assert_array_equal(actual.instances, expected.instances)
    np.testing.assert_array_equal(actual.probabilities, expected.probabilities)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="auto, always, never"):
        OtsuBaseline(invert="sometimes")
    with pytest.raises(ValueError, match="sigma"):
        OtsuBaseline(sigma=-1)
    with pytest.raises(ValueError, match="opening_radius"):
        OtsuBaseline(opening_radius=-1)


def test_create_baseline_lists_the_valid_names() -> None:
    assert isinstance(create_baseline("otsu"), OtsuBaseline)
    with pytest.raises(ValueError, match="otsu") as info:
        create_baseline("kmeans")
    assert "kmeans" in str(info.value)
    assert set(BASELINES) == {"otsu"}
