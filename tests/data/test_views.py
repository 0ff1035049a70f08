"""Pre-processed views of an image (the U-Net extended input) and modality detection."""

from __future__ import annotations

import numpy as np
import pytest

from seglab.data.synthetic import make_nuclei
from seglab.data.views import (
    DEFAULT_EXTENDED_VIEWS,
    VIEWS,
    clahe_view,
    detect_modality,
    gradient_view,
    invert_view,
    make_views,
)


def _random_image(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("name", list(VIEWS))
@pytest.mark.parametrize("shape", [(32, 32, 3), (13, 7, 1), (3, 5, 2), (1, 1, 4)])
def test_every_view_keeps_shape_dtype_and_range(name: str, shape: tuple[int, int, int]) -> None:
    out = VIEWS[name](_random_image(shape))
    assert out.shape == shape
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_invert_golden_values() -> None:
    image = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 3, 1)
    np.testing.assert_array_equal(invert_view(image)[0, :, 0], [1.0, 0.75, 0.0])


def test_gradient_of_a_step_edge_peaks_at_the_edge_and_is_zero_elsewhere() -> None:
    image = np.zeros((5, 6, 1), np.float32)
    image[:, 3:] = 1.0
    # Sobel x-kernel rows weigh 1, 2, 1: the two columns beside the step see 4, flat ones 0;
    # every row is the same, so the y-derivative is 0 and the normalised magnitude is 4 / 4.
    expected = np.tile([0.0, 0.0, 1.0, 1.0, 0.0, 0.0], (5, 1))
    np.testing.assert_allclose(gradient_view(image)[:, :, 0], expected, atol=1e-6)


def test_gradient_of_a_constant_image_is_zero() -> None:
    assert not gradient_view(np.full((8, 8, 2), 0.3, np.float32)).any()


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_clahe_keeps_a_constant_image_constant(value: float) -> None:
    out = clahe_view(np.full((16, 24, 3), value, np.float32))
    assert np.ptp(out) == 0.0


def test_clahe_stretches_a_low_contrast_image() -> None:
    image = 0.4 + 0.1 * _random_image((64, 64, 1))
    assert clahe_view(image).std() > 2 * image.std()


def test_clahe_treats_channels_independently() -> None:
    image = _random_image((32, 32, 3))
    together = clahe_view(image)
    for channel in range(3):
        alone = clahe_view(image[:, :, channel : channel + 1])
        np.testing.assert_array_equal(together[:, :, channel], alone[:, :, 0])


def test_make_views_stacks_in_the_order_given() -> None:
    image = _random_image((8, 9, 3))
    out = make_views(image, ("invert", "raw", "gradient"))
    assert out.shape == (8, 9, 9) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :, 0:3], invert_view(image))
    np.testing.assert_array_equal(out[:, :, 3:6], image)
    np.testing.assert_array_equal(out[:, :, 6:9], gradient_view(image))


def test_default_extended_views_triple_the_channels() -> None:
    assert DEFAULT_EXTENDED_VIEWS == ("raw", "clahe", "invert")
    assert make_views(_random_image((16, 16, 1)), DEFAULT_EXTENDED_VIEWS).shape == (16, 16, 3)


def test_raw_alone_returns_the_image_without_copying() -> None:
    image = _random_image((8, 8, 3))
    out = make_views(image, ("raw",))
    np.testing.assert_array_equal(out, image)
    assert np.shares_memory(out, image)


def test_unknown_view_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="sharpen") as info:
        make_views(_random_image((4, 4, 1)), ("raw", "sharpen"))
    assert all(name in str(info.value) for name in VIEWS)


def test_make_views_rejects_no_view_and_2d_images() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_views(_random_image((4, 4, 1)), ())
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        make_views(np.zeros((4, 4), np.float32), ("raw",))


@pytest.mark.parametrize("variant", ["fluorescence", "brightfield"])
def test_detect_modality_on_50_synthetic_images(variant: str) -> None:
    images = [image for image, _ in make_nuclei(50, size=64, seed=3, variant=variant)]
    assert [detect_modality(image) for image in images] == [variant] * 50


@pytest.mark.parametrize("variant", ["fluorescence", "brightfield"])
def test_detect_modality_ignores_dtype_and_channel_layout(variant: str) -> None:
    image = make_nuclei(1, size=64, seed=5, variant=variant)[0][0]
    forms = [
        image,
        image.astype(np.uint16) * 257,  # the same picture in 16 bits
        image.astype(np.float32) / 255,
        image.mean(axis=2),  # (H, W)
        image.mean(axis=2, keepdims=True).astype(np.uint8),  # (H, W, 1)
    ]
    assert [detect_modality(form) for form in forms] == [variant] * len(forms)


def test_detect_modality_of_a_constant_image_is_fluorescence() -> None:
    assert detect_modality(np.full((8, 8, 3), 200, np.uint8)) == "fluorescence"
