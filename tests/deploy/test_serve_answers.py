"""The answers of `POST /predict` the web page builds on: probabilities, instance labels, a
chosen threshold and everything at once (`format=full`)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from fastapi.testclient import TestClient
from PIL import Image

from seglab.baseline import create_baseline
from seglab.bundle import make_metadata, save_bundle
from seglab.data.synthetic import make_nuclei
from seglab.deploy.answers import labels_file, media_type, probability_image
from seglab.deploy.serve import create_app
from seglab.inference.loading import load_predictor
from seglab.models import create_model
from seglab.viz import to_display

IMAGE = np.ascontiguousarray(make_nuclei(1, size=64, seed=3, variant="fluorescence")[0][0][:48])
PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def post(client: TestClient, fmt: str, **data: Any) -> Any:
    upload = {"file": ("cells.png", png(IMAGE), "image/png")}
    return client.post(f"/predict?format={fmt}", files=upload, data=data)


def from_data_url(url: str) -> np.ndarray:
    head, payload = url.split(",", 1)
    assert head == "data:image/png;base64"
    return decode(base64.b64decode(payload))


@pytest.fixture(scope="module")
def otsu() -> Iterator[TestClient]:
    with TestClient(create_app("otsu")) as client:
        yield client


def make_bundle(path: Path, labels: dict[str, Any] | None = None) -> Path:
    torch.manual_seed(0)
    classes = 1 if labels is None else len(labels["names"])
    kwargs = {"in_channels": 3, "num_classes": classes, "n_filters": 1, "depth": 2}
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    metadata = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing=preprocessing | {"channels": 3, "views": ["raw"]},
        threshold=0.5,
        metrics={},
        config={},
        labels=labels,
    )
    return save_bundle(create_model("unet", **kwargs), metadata, path)


def test_probability_image_rounds_to_255_steps() -> None:
    probabilities = np.array([[0.0, 0.5, 0.3], [1.0, 1.2, -0.1]])
    # 127.5 rounds to the even 128; 76.5 to 76; out-of-range values are clipped first.
    expected = np.array([[0, 128, 76], [255, 255, 0]], np.uint8)
    np.testing.assert_array_equal(probability_image(probabilities), expected)


def test_labels_file_is_a_16_bit_png_then_a_32_bit_tiff() -> None:
    labels = np.array([[0, 1], [300, 65535]])
    small = labels_file(labels)
    assert media_type(small) == "image/png"
    decoded = decode(small)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, labels)
    many = labels_file(labels + 1)  # 65,536 needs 17 bits
    assert media_type(many) == "image/tiff"
    read = tifffile.imread(io.BytesIO(many))
    assert read.dtype == np.uint32
    np.testing.assert_array_equal(read, labels + 1)


def test_probabilities_and_labels_formats(otsu: TestClient) -> None:
    baseline = create_baseline("otsu")
    answer = post(otsu, "probabilities")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    expected = probability_image(baseline.predict_proba(IMAGE))
    np.testing.assert_array_equal(decode(answer.content), expected)
    answer = post(otsu, "labels")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode(answer.content), baseline.predict(IMAGE).instances)


def test_a_threshold_recuts_the_mask_and_recounts_the_instances(otsu: TestClient) -> None:
    expected = create_baseline("otsu").predict(IMAGE, threshold=0.3)
    default = post(otsu, "json").json()
    summary = post(otsu, "json", threshold="0.3").json()
    assert summary["threshold"] == 0.3
    assert summary["foreground_fraction"] == pytest.approx(expected.mask.mean())
    assert summary["foreground_fraction"] > default["foreground_fraction"]
    assert expected.instances is not None and summary["instances"] == expected.instances.max()
    # In the query as well as in the form.
    upload = {"file": ("cells.png", png(IMAGE), "image/png")}
    mask = decode(otsu.post("/predict?threshold=0.3", files=upload).content) > 0
    np.testing.assert_array_equal(mask, expected.mask)


def test_a_threshold_replaces_a_bundles_tuned_one(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "model")
    predictor = load_predictor(bundle, backend="torch")
    probabilities = predictor.predict(IMAGE).probabilities
    cut = float(np.median(probabilities))  # half the pixels either side, whatever the weights
    with TestClient(create_app(bundle, backend="torch")) as client:
        mask = decode(post(client, "png", threshold=str(cut)).content) > 0
        labels = post(client, "labels")
    np.testing.assert_array_equal(mask, probabilities >= cut)
    assert labels.status_code == 400
    assert "'instances' settings" in labels.json()["detail"]


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan", "half"])
@pytest.mark.parametrize("where", ["query", "form"])
def test_a_threshold_outside_0_1_is_a_400(otsu: TestClient, value: str, where: str) -> None:
    upload = {"file": ("cells.png", png(IMAGE), "image/png")}
    if where == "query":
        answer = otsu.post(f"/predict?threshold={value}", files=upload)
    else:
        answer = otsu.post("/predict", files=upload, data={"threshold": value})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith(f"threshold must be a number between 0 and 1, got {value!r}; ")


def test_full_holds_every_image_of_the_page(otsu: TestClient) -> None:
    baseline = create_baseline("otsu")
    prediction = baseline.predict(IMAGE, threshold=0.4)
    summary = post(otsu, "full", threshold="0.4").json()
    assert summary["instances"] == len(summary["rle"]) == prediction.instances.max()
    images = summary["images"]
    assert set(images) == {"image", "mask", "probabilities", "labels"}
    np.testing.assert_array_equal(from_data_url(images["image"]), to_display(IMAGE))
    np.testing.assert_array_equal(from_data_url(images["mask"]), prediction.mask * 255)
    expected = probability_image(baseline.predict_proba(IMAGE))
    np.testing.assert_array_equal(from_data_url(images["probabilities"]), expected)
    np.testing.assert_array_equal(from_data_url(images["labels"]), prediction.instances)


def test_multi_class_models_refuse_what_only_binary_ones_have(tmp_path: Path) -> None:
    labels = {"names": ["background", "cell", "debris"], "palette": PALETTE, "ignore_index": 255}
    bundle = make_bundle(tmp_path / "model", labels)
    classes = load_predictor(bundle, backend="torch").predict(IMAGE).mask
    with TestClient(create_app(bundle, backend="torch")) as client:
        summary = post(client, "full").json()
        refused = [post(client, "probabilities"), post(client, "labels")]
        refused.append(post(client, "png", threshold="0.5"))
    assert set(summary["images"]) == {"image", "mask"}
    np.testing.assert_array_equal(
        from_data_url(summary["images"]["mask"]), np.asarray(PALETTE, np.uint8)[classes]
    )
    assert set(summary["class_fractions"]) == set(labels["names"])
    assert [answer.status_code for answer in refused] == [400, 400, 400]
    assert "multi-class" in refused[0].json()["detail"]
    assert "instances" in refused[1].json()["detail"]
    assert "threshold applies to binary models" in refused[2].json()["detail"]
