"""The REST service: every answer on good input, a 4xx with a message (never a 500) on bad."""

from __future__ import annotations

import io
import json
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
from seglab.deploy.serve import (
    ENV_MODEL,
    ImageTooLargeError,
    ServeLimits,
    app_from_env,
    create_app,
    decode_image,
)
from seglab.errors import ConfigError, DataError, SeglabError
from seglab.inference.loading import load_predictor
from seglab.models import create_model
from seglab.rle import rle_decode
from seglab.viz import MASK_COLOR, mask_overlay

# Not square, so a transposed mask cannot pass for the right one.
IMAGE = np.ascontiguousarray(make_nuclei(1, size=64, seed=3, variant="fluorescence")[0][0][:48])


def encode(array: np.ndarray, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def post(client: TestClient, data: bytes, fmt: str = "png", **kwargs: Any) -> Any:
    upload = {"file": ("cells.png", data, "image/png")}
    return client.post(f"/predict?format={fmt}", files=upload, **kwargs)


@pytest.fixture(scope="module")
def otsu() -> Iterator[TestClient]:
    with TestClient(create_app("otsu")) as client:
        yield client


def make_bundle(path: Path, instances: dict[str, Any] | None) -> Path:
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": 1, "n_filters": 1, "depth": 2}
    preprocessing = {
        "normalize": "scale",
        "percentiles": [1, 99],
        "input_size": None,
        "channels": 3,
        "views": ["raw"],
    }
    metadata = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        threshold=0.5,
        metrics={},
        config={"train": {"epochs": 1}},
        instances=instances,
    )
    return save_bundle(create_model("unet", **kwargs), metadata, path)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "model", instances=None)


def test_health(otsu: TestClient) -> None:
    assert otsu.get("/health").json() == {"status": "ok"}


def test_model_info_drops_the_training_config(bundle: Path) -> None:
    with TestClient(create_app(bundle, backend="torch")) as client:
        info = client.get("/model").json()
    assert "config" not in info
    assert info["model"]["name"] == "unet"
    assert info["backend"] == "torch"
    assert info["threshold"] == 0.5


def test_model_info_of_a_baseline(otsu: TestClient) -> None:
    info = otsu.get("/model").json()
    assert (info["model"]["name"], info["backend"]) == ("otsu", "numpy")


def test_predict_png_is_the_predictors_mask(otsu: TestClient) -> None:
    response = post(otsu, encode(IMAGE))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert float(response.headers["x-inference-ms"]) >= 0
    mask = decode(response.content)
    expected = create_baseline("otsu").predict(IMAGE).mask
    assert mask.shape == IMAGE.shape[:2]
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask > 0, expected)


def test_predict_json_summarises_the_mask_and_its_instances(otsu: TestClient) -> None:
    response = post(otsu, encode(IMAGE), fmt="json")
    assert response.status_code == 200
    summary = response.json()
    mask = decode(post(otsu, encode(IMAGE)).content) > 0
    assert (summary["height"], summary["width"]) == IMAGE.shape[:2]
    assert summary["foreground_fraction"] == pytest.approx(mask.mean())
    assert summary["threshold"] == 0.5
    assert summary["inference_ms"] == pytest.approx(float(response.headers["x-inference-ms"]))
    assert summary["instances"] == len(summary["rle"]) > 0
    labels = create_baseline("otsu").predict(IMAGE).instances
    assert labels is not None and summary["instances"] == labels.max()
    # The instances tile the mask exactly: each pixel in one nucleus, none outside the mask.
    decoded = [rle_decode(rle, IMAGE.shape[:2]) for rle in summary["rle"]]
    np.testing.assert_array_equal(np.sum(decoded, axis=0), mask)


def test_predict_overlay_is_the_mask_over_the_image(otsu: TestClient) -> None:
    response = post(otsu, encode(IMAGE), fmt="overlay")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    mask = create_baseline("otsu").predict(IMAGE).mask
    np.testing.assert_array_equal(decode(response.content), mask_overlay(IMAGE, mask))


def test_format_may_be_a_form_field(otsu: TestClient) -> None:
    upload = {"file": ("cells.png", encode(IMAGE), "image/png")}
    response = otsu.post("/predict", files=upload, data={"format": "json"})
    assert response.status_code == 200
    assert response.json()["width"] == IMAGE.shape[1]


@pytest.mark.parametrize("instances", [None, {"method": "components", "min_area": 0}])
def test_bundle_predictions(tmp_path: Path, instances: dict[str, Any] | None) -> None:
    path = make_bundle(tmp_path / "model", instances)
    expected = load_predictor(path, backend="torch").predict(IMAGE).mask
    with TestClient(create_app(path, backend="torch")) as client:
        mask = decode(post(client, encode(IMAGE)).content) > 0
        summary = post(client, encode(IMAGE), fmt="json").json()
    np.testing.assert_array_equal(mask, expected)
    # Instances are reported only when the bundle says how to separate them.
    assert ("instances" in summary) == (instances is not None)
    if instances is not None:
        assert len(summary["rle"]) == summary["instances"] >= 0


GRAY16 = (IMAGE[..., 1].astype(np.uint16) * 257)[..., None]
RGBA = np.dstack([IMAGE, np.full(IMAGE.shape[:2], 128, np.uint8)])


def tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "content_type", "expected"),
    [
        ("gray16.png", encode(GRAY16[..., 0]), "image/png", GRAY16),
        ("gray8.png", encode(IMAGE[..., 1]), "image/png", IMAGE[..., 1:2]),
        ("rgba.png", encode(RGBA), "image/png", IMAGE),
        ("rgb.tif", tiff(IMAGE), "image/tiff", IMAGE),
        # curl sends .tif files without a type: the extension decides.
        ("gray16.tiff", tiff(GRAY16[..., 0]), "application/octet-stream", GRAY16),
        ("rgb.jpg", encode(IMAGE, "JPEG", quality=95), "image/jpeg", None),
    ],
    ids=["png16-gray", "png8-gray", "png-rgba", "tiff", "tiff16-untyped", "jpeg"],
)
def test_accepted_images(
    otsu: TestClient, name: str, data: bytes, content_type: str, expected: np.ndarray | None
) -> None:
    if expected is not None:
        decoded = decode_image(data, name)
        assert decoded.dtype == expected.dtype
        np.testing.assert_array_equal(decoded, expected)
    response = otsu.post("/predict", files={"file": (name, data, content_type)})
    assert response.status_code == 200, response.text
    assert decode(response.content).shape == IMAGE.shape[:2]


PNG = encode(IMAGE)
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("text", {"files": {"file": ("notes.txt", b"hello", "text/plain")}}, 415, "image/png"),
    ("gif", {"files": {"file": ("a.gif", b"GIF89a", "image/gif")}}, 415, "image/tiff"),
    ("truncated", {"files": {"file": ("a.png", PNG[: len(PNG) // 2], "image/png")}}, 400, "a.png"),
    ("garbage", {"files": {"file": ("a.png", b"\x00" * 99, "image/png")}}, 400, "not a PNG"),
    ("empty-file", {"files": {"file": ("a.png", b"", "image/png")}}, 400, "empty"),
    ("no-body", {}, 400, "no file"),
    ("no-file-field", {"data": {"format": "json"}}, 400, "'file'"),
    ("wrong-field", {"files": {"image": ("a.png", PNG, "image/png")}}, 400, "'image'"),
    ("text-field", {"data": {"file": "a.png"}}, 400, "not a file"),
    ("two-files", {"files": [("file", ("a.png", PNG)), ("file", ("b.png", PNG))]}, 400, "files"),
    ("raw-body", {"content": PNG, "headers": {"content-type": "image/png"}}, 415, "multipart"),
    (
        "no-boundary",
        {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
        400,
        "boundary",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_a_4xx_naming_the_problem(
    otsu: TestClient, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = otsu.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_unknown_format(otsu: TestClient) -> None:
    response = post(otsu, PNG, fmt="bmp")
    assert response.status_code == 400
    assert "'bmp'" in response.json()["detail"]


@pytest.fixture(scope="module")
def tiny_limit() -> Iterator[TestClient]:
    with TestClient(create_app("otsu", limits=ServeLimits(max_upload_mb=0.001))) as client:
        yield client


def test_oversize_upload(tiny_limit: TestClient) -> None:
    assert len(PNG) > 1048
    response = post(tiny_limit, PNG)
    assert response.status_code == 413
    assert "1,048" in response.json()["detail"]
    assert post(tiny_limit, encode(np.zeros((8, 8), np.uint8))).status_code == 200


def test_oversize_body_is_refused_from_content_length(tiny_limit: TestClient) -> None:
    response = post(tiny_limit, bytes(200_000))
    assert response.status_code == 413
    assert "upload of" in response.json()["detail"]


def test_oversize_chunked_upload_is_cut_short(tiny_limit: TestClient) -> None:
    # No Content-Length: only counting the bytes received can stop this one.
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'

    def chunks() -> Iterator[bytes]:
        yield head
        yield from (bytes(65536) for _ in range(16))
        yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    response = tiny_limit.post("/predict", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_too_many_pixels() -> None:
    with pytest.raises(ImageTooLargeError, match="64x48"):
        decode_image(PNG, "big.png", max_pixels=48 * 64 - 1)


def test_bad_bundle_fails_before_serving(tmp_path: Path) -> None:
    with pytest.raises(SeglabError, match="not a model bundle"):
        create_app(tmp_path / "missing")


def test_classification_bundle_is_refused_from_its_metadata(tmp_path: Path) -> None:
    # Only seglab.json, no weights: loading the model would fail on the missing weights file,
    # so the refusal shows the model was never loaded.
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": [8, 8]}
    metadata = make_metadata(
        model_name="cnn",
        model_kwargs=kwargs,
        preprocessing={},
        threshold=0.5,
        metrics={},
        config={},
    )
    metadata["task"] = "classification"
    bundle = tmp_path / "digits"
    bundle.mkdir()
    (bundle / "seglab.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigError, match="a classification model; serve serves segmentation"):
        create_app(bundle)


def test_app_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODEL, "otsu")
    with TestClient(app_from_env()) as client:
        assert client.get("/model").json()["model"]["name"] == "otsu"
    monkeypatch.delenv(ENV_MODEL)
    with pytest.raises(ConfigError, match=ENV_MODEL):
        app_from_env()


def test_page_and_docs(otsu: TestClient) -> None:
    page = otsu.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for element in ("file", "image", "mask", "overlay", "time", "error", "threshold", "empty"):
        assert f'id="{element}"' in page.text
    # The outline colours on offer include the one the server's own overlays use.
    assert 'value="{},{},{}"'.format(*MASK_COLOR) in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    assert otsu.get("/docs").status_code == 200
    upload = otsu.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert "file" in upload["content"]["multipart/form-data"]["schema"]["properties"]


def test_a_tiff_stack_whose_first_page_is_small_is_refused_before_decoding() -> None:
    # 10 pages of 64x64: Pillow sees one 4,096-pixel page; the stack declares 40,960 pixels.
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((10, 64, 64), np.uint8), compression="zlib")
    with pytest.raises(ImageTooLargeError, match="40,960 pixels") as error:
        decode_image(buffer.getvalue(), "stack.tif", max_pixels=20_000)
    assert "stack.tif" in str(error.value) and "seglab-serve" not in str(error.value)
    with pytest.raises(DataError, match="stack"):  # within the limit: read, and not an image
        decode_image(buffer.getvalue(), "stack.tif", max_pixels=50_000)
