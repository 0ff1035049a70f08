"""The web page in a real browser: headless Chromium, driven by selenium, against a real uvicorn
server on a loopback port, segmenting a synthetic nuclei image with the Otsu baseline."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from seglab.data.io import write_png
from seglab.data.synthetic import make_nuclei
from seglab.deploy.serve import create_app
from seglab.viz import MASK_COLOR

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIZE = 128

# Draws an <img> on a canvas and returns its RGBA pixels: what the page shows, decoded by the
# browser itself (a blob: URL is same-origin, so the canvas may be read back).
READ_PIXELS = """
const image = document.getElementById(arguments[0]);
const canvas = document.createElement("canvas");
canvas.width = image.naturalWidth;
canvas.height = image.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(image, 0, 0);
return [canvas.width, canvas.height,
        Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)];
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    import uvicorn

    app = create_app("otsu")
    # Bound here, before the server starts: port 0 gets a free port with no race for it.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} missing: install Debian's chromium and "
            "chromium-driver; `make test` does it"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_state(driver: WebDriver, state: str, timeout: float = 30.0) -> None:
    def settled(driver: WebDriver) -> bool:
        return driver.execute_script("return document.body.dataset.state") in ("done", "error")

    WebDriverWait(driver, timeout).until(settled)
    assert driver.execute_script("return document.body.dataset.state") == state


def shown_pixels(driver: WebDriver, element_id: str) -> np.ndarray:
    width, height, data = driver.execute_script(READ_PIXELS, element_id)
    return np.asarray(data, np.uint8).reshape(height, width, 4)


def test_page_segments_an_upload(browser: WebDriver, server: str, tmp_path: Path) -> None:
    driver = browser
    image = make_nuclei(1, size=SIZE, seed=5, variant="fluorescence")[0][0]
    image_path = tmp_path / "nuclei.png"
    write_png(image_path, image)
    text_path = tmp_path / "notes.txt"
    text_path.write_text("not an image")

    driver.get(server)
    find = driver.find_element

    # A 4xx first: the page must say what is wrong, in words from the server.
    find(By.ID, "file").send_keys(str(text_path))
    wait_for_state(driver, "error")
    error = find(By.ID, "error")
    assert error.is_displayed()
    assert "415" in error.text and "image/png" in error.text

    find(By.ID, "file").send_keys(str(image_path))
    wait_for_state(driver, "done")
    assert find(By.ID, "error").text == ""
    assert "otsu" in find(By.ID, "model").text
    assert "Inference" in find(By.ID, "time").text and " ms" in find(By.ID, "time").text
    for element_id in ("image", "mask", "overlay"):
        assert find(By.ID, element_id).is_displayed()

    overlay = shown_pixels(driver, "overlay")
    assert overlay.shape == (SIZE, SIZE, 4)
    # The outline of the mask is drawn in the mask colour itself.
    assert np.all(overlay[..., :3] == MASK_COLOR, axis=-1).sum() > 0

    response = httpx.post(
        f"{server}predict?format=png",
        files={"file": ("nuclei.png", image_path.read_bytes(), "image/png")},
        timeout=30,
    )
    assert response.status_code == 200
    expected = np.asarray(Image.open(io.BytesIO(response.content)))
    assert expected.any()
    np.testing.assert_array_equal(shown_pixels(driver, "mask")[..., 0], expected)

    screenshot = tmp_path / "web_page.png"
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0
    if artifacts := os.environ.get("SEGLAB_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / "web_page.png")
