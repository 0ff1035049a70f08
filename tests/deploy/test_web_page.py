"""The web page in a real browser: headless Chromium, driven by selenium, against a real uvicorn
server on a loopback port, segmenting a synthetic nuclei image with the Otsu baseline."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from seglab.bundle import make_metadata, save_bundle
from seglab.data.io import write_png
from seglab.data.synthetic import make_nuclei
from seglab.deploy.serve import create_app
from seglab.models import create_model

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SIZE = 128

# The RGBA pixels the page shows: an <img> drawn on a canvas, or a canvas itself (a blob: URL
# is same-origin, so the canvas may be read back).
READ_PIXELS = """
const element = document.getElementById(arguments[0]);
let canvas = element;
if (element.tagName === "IMG") {
  canvas = document.createElement("canvas");
  canvas.width = element.naturalWidth;
  canvas.height = element.naturalHeight;
  canvas.getContext("2d").drawImage(element, 0, 0);
}
const context = canvas.getContext("2d");
return [canvas.width, canvas.height,
        Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)];
"""
# The bytes behind a download link, base64-encoded.
READ_LINK = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById(arguments[0]).href)
  .then((response) => response.arrayBuffer())
  .then((buffer) => {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    done(btoa(text));
  });
"""
# A file dropped on the drop zone, as a browser would dispatch it.
DROP_FILE = """
const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], arguments[1], { type: "image/png" }));
const zone = document.getElementById("drop");
for (const type of ["dragover", "drop"]) {
  const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
  zone.dispatchEvent(new DragEvent(type, init));
}
"""
# Moves the threshold slider as a drag does ("input") and, with `release`, lets go ("change").
MOVE_SLIDER = """
const slider = document.getElementById("threshold");
slider.value = arguments[0];
slider.dispatchEvent(new Event("input"));
if (arguments[1]) slider.dispatchEvent(new Event("change"));
"""


@contextmanager
def serving(model: str | Path) -> Iterator[str]:
    """The URL of a real uvicorn server of `model` on a free loopback port."""
    import uvicorn

    app = create_app(model, backend="torch" if isinstance(model, Path) else "auto")
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
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving("otsu") as url:
        yield url


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


def server_answer(server: str, image_path: Path, fmt: str, threshold: float | None = None) -> Any:
    """What the server answers for this image, asked directly."""
    query = f"format={fmt}" + ("" if threshold is None else f"&threshold={threshold}")
    response = httpx.post(
        f"{server}predict?{query}",
        files={"file": (image_path.name, image_path.read_bytes(), "image/png")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    if fmt in ("json", "full"):
        return response.json()
    return np.asarray(Image.open(io.BytesIO(response.content)))


def downloaded(driver: WebDriver, link_id: str) -> np.ndarray:
    data = base64.b64decode(driver.execute_async_script(READ_LINK, link_id))
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture
def nuclei(tmp_path: Path) -> Path:
    image = make_nuclei(1, size=SIZE, seed=5, variant="fluorescence")[0][0]
    path = tmp_path / "nuclei.png"
    write_png(path, image)
    return path


def upload(driver: WebDriver, server: str, image_path: Path) -> None:
    driver.get(server)
    driver.find_element(By.ID, "file").send_keys(str(image_path))
    wait_for_state(driver, "done")


def test_before_an_upload_the_page_shows_instructions(browser: WebDriver, server: str) -> None:
    browser.get(server)
    find = browser.find_element
    assert find(By.ID, "empty").is_displayed()
    assert "Choose an image" in find(By.ID, "empty").text
    assert "drag" in find(By.ID, "empty").text
    assert not find(By.ID, "results").is_displayed()
    # No image is on show before there is one to show (no broken-image placeholders).
    for image in browser.find_elements(By.TAG_NAME, "img"):
        assert not image.is_displayed() or browser.execute_script(
            "return arguments[0].naturalWidth", image
        )
    assert not any(link.is_displayed() for link in browser.find_elements(By.TAG_NAME, "a"))


def test_page_segments_an_upload(
    browser: WebDriver, server: str, nuclei: Path, tmp_path: Path
) -> None:
    driver = browser
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
    assert find(By.ID, "empty").is_displayed()

    find(By.ID, "file").send_keys(str(nuclei))
    wait_for_state(driver, "done")
    assert find(By.ID, "error").text == ""
    assert not find(By.ID, "empty").is_displayed()
    assert "otsu" in find(By.ID, "model").text
    assert "Inference" in find(By.ID, "time").text and " ms" in find(By.ID, "time").text
    for element_id in ("image", "mask", "overlay", "count", "fraction", "threshold"):
        assert find(By.ID, element_id).is_displayed()

    summary = server_answer(server, nuclei, "json")
    assert find(By.ID, "count").text == f"{summary['instances']} instances"
    assert (
        find(By.ID, "fraction").text == f"Foreground {100 * summary['foreground_fraction']:.1f} %"
    )
    assert find(By.ID, "threshold").get_attribute("value") == "0.5"
    np.testing.assert_array_equal(
        shown_pixels(driver, "mask")[..., 0], server_answer(server, nuclei, "png")
    )
    np.testing.assert_array_equal(
        shown_pixels(driver, "image")[..., :3], np.asarray(Image.open(nuclei).convert("RGB"))
    )

    screenshot = tmp_path / "web_page.png"
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0
    if artifacts := os.environ.get("SEGLAB_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / "web_page.png")


def test_the_overlay_outlines_the_mask_in_the_chosen_colour(
    browser: WebDriver, server: str, nuclei: Path
) -> None:
    upload(browser, server, nuclei)
    mask = server_answer(server, nuclei, "png") > 0
    image = np.asarray(Image.open(nuclei).convert("RGB"))
    # Pixels with a 4-neighbour on the other side of the mask's edge (the test image is shown
    # larger than it is, so the outline is one image pixel wide).
    padded = np.pad(mask, 1, mode="edge")
    neighbours = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    edge = np.any([side != mask for side in neighbours], axis=0)
    for colour, opacity in (("255,255,0", "0"), ("0,255,255", "1")):
        browser.find_element(By.CSS_SELECTOR, f"input[name=colour][value='{colour}']").click()
        browser.execute_script(
            "const s = document.getElementById('opacity'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));",
            opacity,
        )
        rgb = np.array(colour.split(","), np.uint8)
        shown = shown_pixels(browser, "overlay")[..., :3]
        np.testing.assert_array_equal(
            shown[mask & edge], np.broadcast_to(rgb, shown[mask & edge].shape)
        )
        assert not shown[~mask & edge].any()  # the dark edge outside
        np.testing.assert_array_equal(shown[~mask & ~edge], image[~mask & ~edge])
        inside = (
            image[mask & ~edge]
            if opacity == "0"
            else np.broadcast_to(rgb, image[mask & ~edge].shape)
        )
        np.testing.assert_array_equal(shown[mask & ~edge], inside)


def test_the_threshold_previews_then_recounts(
    browser: WebDriver, server: str, nuclei: Path
) -> None:
    upload(browser, server, nuclei)
    find = browser.find_element
    probabilities = server_answer(server, nuclei, "probabilities")
    before = shown_pixels(browser, "mask")[..., 0]

    browser.execute_script(MOVE_SLIDER, "0.3", False)
    preview = probabilities >= 0.3 * 255
    shown = shown_pixels(browser, "mask")[..., 0]
    np.testing.assert_array_equal(shown, preview * 255)
    assert (shown != before).any()
    assert find(By.ID, "fraction").text == f"Foreground {100 * preview.mean():.1f} % (preview)"
    assert "let go to recount" in find(By.ID, "count").text

    browser.execute_script(MOVE_SLIDER, "0.3", True)
    wait_for_state(browser, "done")
    summary = server_answer(server, nuclei, "json", threshold=0.3)
    np.testing.assert_array_equal(
        shown_pixels(browser, "mask")[..., 0], server_answer(server, nuclei, "png", threshold=0.3)
    )
    assert find(By.ID, "count").text == f"{summary['instances']} instances"
    assert (
        find(By.ID, "fraction").text == f"Foreground {100 * summary['foreground_fraction']:.1f} %"
    )
    labels = downloaded(browser, "download-labels")
    np.testing.assert_array_equal(labels, server_answer(server, nuclei, "labels", threshold=0.3))


def test_downloads_hold_the_mask_and_the_instance_labels(
    browser: WebDriver, server: str, nuclei: Path
) -> None:
    upload(browser, server, nuclei)
    find = browser.find_element
    assert find(By.ID, "download-mask").get_attribute("download") == "nuclei_mask.png"
    assert find(By.ID, "download-labels").get_attribute("download") == "nuclei_labels.png"
    mask = downloaded(browser, "download-mask")
    np.testing.assert_array_equal(mask, server_answer(server, nuclei, "png"))
    labels = downloaded(browser, "download-labels")
    assert labels.dtype == np.uint16 and labels.shape == (SIZE, SIZE)
    assert labels.max() == server_answer(server, nuclei, "json")["instances"]
    np.testing.assert_array_equal(labels > 0, mask > 0)
    probabilities = downloaded(browser, "download-probabilities")
    np.testing.assert_array_equal(probabilities, server_answer(server, nuclei, "probabilities"))


def test_a_dropped_file_is_segmented(browser: WebDriver, server: str, nuclei: Path) -> None:
    browser.get(server)
    browser.execute_script(DROP_FILE, base64.b64encode(nuclei.read_bytes()).decode(), "dropped.png")
    wait_for_state(browser, "done")
    np.testing.assert_array_equal(
        shown_pixels(browser, "mask")[..., 0], server_answer(server, nuclei, "png")
    )
    assert (
        browser.find_element(By.ID, "download-mask").get_attribute("download") == "dropped_mask.png"
    )


def test_a_multi_class_model_shows_its_classes(
    browser: WebDriver, nuclei: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    names, palette = ["background", "cell", "debris"], [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    kwargs = {"in_channels": 3, "num_classes": 3, "n_filters": 1, "depth": 2}
    metadata = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing={"normalize": "scale", "percentiles": [1, 99], "input_size": None}
        | {"channels": 3, "views": ["raw"]},
        threshold=0.5,
        metrics={},
        config={},
        labels={"names": names, "palette": palette, "ignore_index": 255},
    )
    bundle = save_bundle(create_model("unet", **kwargs), metadata, tmp_path / "model")
    with serving(bundle) as url:
        upload(browser, url, nuclei)
        classes = server_answer(url, nuclei, "png")
        summary = server_answer(url, nuclei, "json")
        np.testing.assert_array_equal(shown_pixels(browser, "mask")[..., :3], classes)
        find = browser.find_element
        fractions = " · ".join(
            f"{name} {100 * fraction:.1f} %"
            for name, fraction in summary["class_fractions"].items()
        )
        assert find(By.ID, "fraction").text == fractions
        assert "debris" in find(By.ID, "mask-legend").text
        assert not find(By.ID, "threshold").is_displayed()
        assert not find(By.ID, "download-labels").is_displayed()
        np.testing.assert_array_equal(downloaded(browser, "download-mask"), classes)
