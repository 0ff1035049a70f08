"""What one request may cost the server: charged pixels, a time limit, memory given back."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from seglab.bundle import make_metadata, save_bundle
from seglab.deploy import answers, serve
from seglab.deploy.limits import (
    ENV_MAX_PIXELS,
    ENV_MAX_SECONDS,
    ENV_MAX_UPLOAD_MB,
    ServeLimits,
    charged_pixels,
)
from seglab.deploy.uploads import ImageTooLargeError, decode_image
from seglab.errors import ConfigError
from seglab.models import create_model


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def post(client: TestClient, data: bytes) -> Any:
    return client.post("/predict", files={"file": ("strip.png", data, "image/png")})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "num_classes": 1, "n_filters": 2, "depth": 2}
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    metadata = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing=preprocessing | {"channels": 1, "views": ["raw"], "tile": 64},
        threshold=0.5,
        metrics={},
        config={},
    )
    path = tmp_path_factory.mktemp("bundle") / "model"
    return save_bundle(create_model("unet", **kwargs), metadata, path)


def test_charged_pixels_count_each_side_as_at_least_32() -> None:
    assert charged_pixels(640, 480) == 307_200
    assert charged_pixels(1, 100_000) == 32 * 100_000
    assert charged_pixels(4, 4) == 32 * 32


def test_a_177_byte_strip_is_refused_from_its_header() -> None:
    strip = png(np.zeros((1, 100_000), np.uint8))
    assert len(strip) < 1000
    with pytest.raises(ImageTooLargeError, match="strip that costs the network as much as"):
        decode_image(strip, "strip.png", max_pixels=1_000_000)
    # 100,000 pixels alone would pass: the charge is what refuses it.
    assert decode_image(strip, "strip.png", max_pixels=3_200_000).shape == (1, 100_000, 1)


def test_limits_travel_through_the_environment() -> None:
    limits = ServeLimits(max_upload_mb=1.5, max_pixels=4096, max_seconds=0.25)
    assert ServeLimits.from_env(limits.to_env()) == limits
    assert ServeLimits.from_env({}) == ServeLimits()
    assert ServeLimits().upload_bytes == 20 * 2**20


@pytest.mark.parametrize(
    ("environ", "culprit"),
    [
        ({ENV_MAX_SECONDS: "soon"}, ENV_MAX_SECONDS),
        ({ENV_MAX_PIXELS: "inf"}, "max_pixels"),
        ({ENV_MAX_UPLOAD_MB: "-1"}, "max_upload_mb"),
        ({ENV_MAX_SECONDS: "nan"}, "max_seconds"),
    ],
)
def test_bad_limits_are_refused_naming_them(environ: dict[str, str], culprit: str) -> None:
    with pytest.raises(ConfigError, match=culprit):
        ServeLimits.from_env(environ)


def test_a_strip_predicts_in_tiles_no_taller_than_itself(bundle: Path) -> None:
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(bundle, backend="torch")
    shapes: list[tuple[int, ...]] = []
    forward = predictor.forward
    predictor.forward = lambda batch: shapes.append(batch.shape) or forward(batch)
    probabilities = predictor.predict_proba(np.zeros((5, 300), np.uint8))
    assert probabilities.shape == (5, 300)
    # Height 5 rounds up to the network's multiple of 4, not to the 64-pixel tile.
    assert {shape[2:] for shape in shapes} == {(8, 64)}


def test_inference_past_the_time_limit_is_a_503(bundle: Path) -> None:
    limits = ServeLimits(max_seconds=1e-6)
    with TestClient(serve.create_app(bundle, "torch", limits)) as client:
        response = post(client, png(np.zeros((40, 400), np.uint8)))
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "strip.png" in detail and "limit of 1e-06 s (--max-seconds)" in detail


def test_an_image_too_small_for_the_network_is_a_400(bundle: Path) -> None:
    with TestClient(serve.create_app(bundle, "torch")) as client:
        response = post(client, png(np.zeros((1, 50), np.uint8)))
    assert response.status_code == 400
    assert "strip.png: the image is 50x1" in response.json()["detail"]


def test_large_and_failed_requests_give_memory_back(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(answers, "release_memory", lambda: calls.append(time.monotonic()))
    with TestClient(serve.create_app(bundle, "torch")) as client:
        assert post(client, png(np.zeros((32, 32), np.uint8))).status_code == 200
        assert calls == []
        assert post(client, b"\x89PNG broken").status_code == 400
        assert len(calls) == 1
        assert post(client, png(np.zeros((1024, 1100), np.uint8))).status_code == 200
        assert len(calls) == 2


class _LeavingClient:
    """A request whose client disconnects at its third poll."""

    def __init__(self) -> None:
        self.polls = 0

    async def is_disconnected(self) -> bool:
        self.polls += 1
        return self.polls >= 3


def test_a_client_that_leaves_is_noticed() -> None:
    gone = threading.Event()
    request = _LeavingClient()
    asyncio.run(asyncio.wait_for(serve.watch_disconnect(request, gone), timeout=5))  # type: ignore[arg-type]
    assert gone.is_set() and request.polls == 3
