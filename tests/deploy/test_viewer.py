"""The napari viewer: layer data without Qt, then napari itself when it and Qt can load.

The Qt tests skip, saying why, when napari is not installed (``pip install 'seglab[viewer]'``)
or Qt cannot start. The dock widget needs Qt only; the full viewer also needs OpenGL, which
the ``offscreen`` platform has only under an X server (``xvfb-run -a pytest ...``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from seglab.bundle import make_metadata, save_bundle
from seglab.data.io import write_label_png, write_png
from seglab.data.synthetic import make_nuclei
from seglab.data.volumes import write_volume
from seglab.deploy.viewer import (
    PROBABILITY_STYLE,
    build_layers,
    image_layer,
    layer_image,
    predict_view,
    read_truth,
    read_view_image,
    segment,
    wants_instances,
)
from seglab.deploy.viewer_window import import_napari
from seglab.errors import DataError, SeglabError
from seglab.inference.base import Prediction
from seglab.inference.loading import load_predictor
from seglab.inference.predictor import Predictor
from seglab.models import create_model

# Set before Qt is first imported: tests never open a window.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Not square, so a transposed layer cannot pass for the right one.
IMAGE, LABELS = make_nuclei(1, size=48, seed=3, variant="fluorescence")[0]
IMAGE, LABELS = np.ascontiguousarray(IMAGE[:40]), np.ascontiguousarray(LABELS[:40])
INSTANCES = {"method": "components", "min_area": 1}


class BrightPixels:
    """Stands in for a model: probability = red / 255, objects = 4-connected components."""

    def __init__(self, instances: dict[str, Any] = INSTANCES) -> None:
        self.metadata = {"model": {"name": "bright"}, "instances": instances}
        self.threshold = 0.5

    def predict(self, image: np.ndarray, instances: bool = False) -> Prediction:
        probabilities = image[..., 0].astype(np.float32) / 255
        mask = probabilities >= self.threshold
        labels = ndimage.label(mask)[0].astype(np.int32) if instances else None
        return Prediction(probabilities, mask, labels)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny U-Net whose threshold is the median probability on IMAGE."""
    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "num_classes": 1, "n_filters": 1, "depth": 2}
    model = create_model("unet", **kwargs)
    preprocessing = {"normalize": "scale", "percentiles": [1, 99], "input_size": None}
    metadata = make_metadata(
        model_name="unet",
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        threshold=0.5,
        metrics={},
        config={},
        instances=INSTANCES,
    )
    # An untrained network's probabilities sit in a narrow band around 0.5; cutting at their
    # median puts about half the pixels in the mask, so the mask and instances are not empty.
    probabilities = Predictor(model, metadata, "cpu").predict_proba(IMAGE)
    metadata["threshold"] = float(np.median(probabilities))
    return save_bundle(model, metadata, tmp_path_factory.mktemp("bundle") / "model")


# --- layer data, no napari needed ---------------------------------------------------------


def test_read_view_image_reads_images_and_volumes(tmp_path: Path) -> None:
    Image.fromarray(IMAGE).save(tmp_path / "cells.png")
    assert read_view_image(tmp_path / "cells.png").shape == (40, 48, 3)
    stack = np.arange(4 * 8 * 9, dtype=np.uint16).reshape(4, 8, 9)
    write_volume(tmp_path / "stack.tif", stack)
    np.testing.assert_array_equal(read_view_image(tmp_path / "stack.tif"), stack[..., None])
    np.save(tmp_path / "stack.npy", stack)
    assert read_view_image(tmp_path / "stack.npy").shape == (4, 8, 9, 1)
    with pytest.raises(DataError, match="missing.png"):
        read_view_image(tmp_path / "missing.png")


def test_read_truth_binary_mask_labels_and_errors(tmp_path: Path) -> None:
    mask = LABELS > 0
    write_png(tmp_path / "mask.png", mask)  # 0/255
    truth = read_truth(tmp_path / "mask.png", (40, 48))
    assert truth.dtype == np.uint8
    np.testing.assert_array_equal(truth, mask.astype(np.uint8))
    write_label_png(tmp_path / "labels.png", LABELS)
    labels = read_truth(tmp_path / "labels.png", (40, 48))
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, LABELS)
    with pytest.raises(DataError, match=r"\(40, 48\).*\(48, 40\)"):
        read_truth(tmp_path / "mask.png", (48, 40))
    Image.fromarray(IMAGE).save(tmp_path / "colour.png")
    with pytest.raises(DataError, match="colour"):
        read_truth(tmp_path / "colour.png", (40, 48))


def test_layer_image_converts_napari_layers_and_refuses_others() -> None:
    gray = np.zeros((5, 6), np.uint16)
    assert layer_image(gray, rgb=False).shape == (5, 6, 1)
    rgba = np.zeros((5, 6, 4), np.uint8)
    assert layer_image(rgba, rgb=True).shape == (5, 6, 3)
    assert layer_image(np.zeros((2, 5, 6)), rgb=False).shape == (2, 5, 6, 1)
    with pytest.raises(SeglabError, match="time series"):
        layer_image(np.zeros((2, 3, 5, 6)), rgb=False)
    with pytest.raises(SeglabError, match="multiscale"):
        layer_image([gray, gray[::2, ::2]], rgb=False)


@settings(max_examples=40, deadline=None)
@given(
    image=hnp.arrays(
        np.uint8,
        st.tuples(
            st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3])
        ).map(lambda shape: shape[1:] if shape[0] == 1 else shape),
    )
)
def test_image_shown_in_napari_reads_back_unchanged(image: np.ndarray) -> None:
    # (H, W, C) images and (D, H, W, C) volumes: what the dock widget reads from the image
    # layer is what the layer was made from.
    layer = image_layer(image, "x")
    np.testing.assert_array_equal(layer_image(layer.data, rgb="rgb" in layer.options), image)


def test_build_layers_names_kinds_and_dtypes() -> None:
    probabilities = np.array([[0.2, 0.9]], np.float64)
    prediction = Prediction(probabilities, probabilities >= 0.5, np.array([[0, 4]], np.int64))
    truth = np.array([[0, 1]], np.uint8)
    layers = build_layers(np.zeros((1, 2, 3), np.uint8), "cells", prediction, truth)
    assert [(layer.name, layer.kind, layer.data.dtype) for layer in layers] == [
        ("cells", "image", np.uint8),
        ("cells probabilities", "image", np.float32),
        ("cells mask", "labels", np.uint8),
        ("cells instances", "labels", np.int32),
        ("cells truth", "labels", np.uint8),
    ]
    assert layers[0].options == {"rgb": True}
    assert layers[1].options["contrast_limits"] == (0.0, 1.0)
    np.testing.assert_array_equal(layers[2].data, [[0, 1]])
    no_instances = build_layers(
        np.zeros((1, 2, 1), np.uint8), "g", Prediction(probabilities, probabilities >= 0.5)
    )
    assert [layer.name for layer in no_instances] == ["g", "g probabilities", "g mask"]
    assert no_instances[0].data.shape == (1, 2)


def test_volume_is_predicted_slice_by_slice_with_unique_labels() -> None:
    volume = np.zeros((3, 2, 3, 1), np.uint8)
    volume[0, 0, 0] = volume[0, 0, 2] = 255  # two separate objects: labels 1, 2
    volume[1, 1, 1] = 255  # one object, label 1 in its slice, 1 + 2 = 3 in the stack
    prediction = predict_view(BrightPixels(), volume, instances=True)
    assert prediction.probabilities.shape == prediction.mask.shape == (3, 2, 3)
    expected = np.zeros((3, 2, 3), np.int32)
    expected[0, 0, 0], expected[0, 0, 2], expected[1, 1, 1] = 1, 2, 3
    np.testing.assert_array_equal(prediction.instances, expected)
    assert predict_view(BrightPixels(), volume, instances=False).instances is None


def test_segment_summary() -> None:
    image = np.array([[[255], [0]], [[0], [0]]], np.uint8)
    result = segment(BrightPixels(), image, "tiny")
    # 1 foreground pixel of 4 = 25.0 %, in one object.
    assert (result.foreground, result.objects) == (0.25, 1)
    assert re.fullmatch(r"tiny: \d+ ms, 25\.0% foreground, 1 objects", result.summary())
    assert [layer.name for layer in result.layers][-1] == "tiny instances"


def test_wants_instances_follows_the_bundle(bundle: Path) -> None:
    assert wants_instances(load_predictor("otsu"))
    assert wants_instances(load_predictor(bundle))
    assert not wants_instances(BrightPixels(instances={}))


def seglab_view(*args: str) -> subprocess.CompletedProcess[str]:
    # Offscreen without an X display: napari, if installed, can never open a window here.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    command = [sys.executable, "-m", "seglab", "view", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_view_help_and_clear_error_without_a_display(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from seglab.cli.main import app

    assert "Example" in CliRunner().invoke(app, ["view", "--help"]).stdout
    Image.fromarray(IMAGE).save(tmp_path / "cells.png")
    result = seglab_view(str(tmp_path / "cells.png"), "--model", "otsu")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    expected = "xvfb-run" if importlib.util.find_spec("napari") else "pip install 'seglab[viewer]'"
    assert expected in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("napari") is not None, reason="napari is installed")
def test_missing_napari_says_how_to_install_it() -> None:
    with pytest.raises(SeglabError, match=re.escape("pip install 'seglab[viewer]'")):
        import_napari()


# --- napari and Qt --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def napari() -> ModuleType:
    """napari with a Qt binding that starts, or a skip saying what is missing."""
    module = pytest.importorskip(
        "napari", reason="napari is not installed: pip install 'seglab[viewer]'"
    )
    pytest.importorskip("qtpy.QtWidgets", reason="no Qt binding: pip install 'seglab[viewer]'")
    # A Qt platform plugin that cannot load aborts the process, so it is tried in a child.
    probe = "from qtpy.QtWidgets import QApplication; QApplication([])"
    started = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if started.returncode != 0:
        platform = os.environ["QT_QPA_PLATFORM"]
        pytest.skip(f"Qt cannot start on QT_QPA_PLATFORM={platform}: {started.stderr[-400:]}")
    return module


def wait_for(widget: Any, seconds: float = 30) -> None:
    from napari.qt import get_qapp

    deadline = time.monotonic() + seconds
    while widget.running:
        assert time.monotonic() < deadline, "the prediction did not finish in time"
        get_qapp().processEvents()
        time.sleep(0.01)
    get_qapp().processEvents()


def test_npe2_manifest_names_the_widget(napari: ModuleType) -> None:
    from npe2 import PluginManifest
    from npe2.manifest.utils import import_python_name

    from seglab.deploy.napari_plugin import SegmentWidget

    manifest = PluginManifest.from_distribution("seglab")
    assert manifest.name == "seglab"
    (widget,) = manifest.contributions.widgets or []
    (command,) = manifest.contributions.commands or []
    assert widget.command == command.id == "seglab.segment_widget"
    assert import_python_name(command.python_name) is SegmentWidget


def test_dock_widget_runs_the_selected_layer(napari: ModuleType, bundle: Path) -> None:
    from napari.components import ViewerModel

    from seglab.deploy.napari_plugin import SegmentWidget

    viewer = ViewerModel()
    viewer.add_image(IMAGE, name="cells", rgb=True)
    viewer.add_image(IMAGE[..., 1], name="green")
    widget = SegmentWidget(viewer, model=bundle)
    assert widget.image.value is viewer.layers["green"]  # the active layer, added last
    viewer.layers.selection.active = viewer.layers["cells"]
    assert widget.image.value is viewer.layers["cells"]
    assert widget.run() is not None
    wait_for(widget)
    expected = Predictor.from_bundle(bundle, "cpu").predict(IMAGE, instances=True)
    mask = viewer.layers["cells mask"].data
    assert mask.dtype == np.uint8 and 0 < mask.mean() < 1
    np.testing.assert_array_equal(mask, expected.mask)
    np.testing.assert_array_equal(viewer.layers["cells instances"].data, expected.instances)
    assert re.fullmatch(r"cells: \d+ ms, \d+\.\d% foreground, \d+ objects", widget.status.value)
    widget.bundle.value = bundle.parent / "no-such-bundle"
    widget.run()
    wait_for(widget)
    assert widget.status.value.startswith("error: ") and "no-such-bundle" in widget.status.value


def test_open_viewer_shows_every_layer(napari: ModuleType, bundle: Path, tmp_path: Path) -> None:
    from seglab.deploy.viewer_window import open_viewer, require_opengl

    try:
        require_opengl()
    except SeglabError as exc:
        pytest.skip(f"no OpenGL for napari's canvas, run under xvfb-run to test it: {exc}")
    Image.fromarray(IMAGE).save(tmp_path / "cells.png")
    write_png(tmp_path / "cells_mask.png", LABELS > 0)
    viewer = open_viewer(tmp_path / "cells.png", bundle, tmp_path / "cells_mask.png", show=False)
    try:
        layers = {layer.name: layer for layer in viewer.layers}
        assert list(layers) == [
            "cells",
            "cells probabilities",
            "cells mask",
            "cells instances",
            "cells truth",
        ]
        assert layers["cells"].data.shape == (40, 48, 3) and layers["cells"].rgb
        for name in ("probabilities", "mask", "instances", "truth"):
            assert layers[f"cells {name}"].data.shape == (40, 48)
        expected = Predictor.from_bundle(bundle, "cpu").predict(IMAGE, instances=True)
        np.testing.assert_allclose(layers["cells probabilities"].data, expected.probabilities)
        assert tuple(layers["cells probabilities"].contrast_limits) == (0.0, 1.0)
        assert layers["cells probabilities"].colormap.name == PROBABILITY_STYLE["colormap"]
        np.testing.assert_array_equal(layers["cells mask"].data, expected.mask)
        np.testing.assert_array_equal(layers["cells truth"].data, LABELS > 0)
        widget = viewer.window.dock_widgets["seglab"]
        viewer.layers.remove("cells mask")
        widget.run()
        wait_for(widget)
        np.testing.assert_array_equal(viewer.layers["cells mask"].data, expected.mask)
        # A hidden window draws its canvas only once the whole window has been grabbed.
        assert viewer.screenshot(canvas_only=False).ndim == 3
        if os.environ["QT_QPA_PLATFORM"] != "offscreen":
            # The offscreen platform never draws the OpenGL canvas (its screenshots hold one
            # or two flat colours); on xcb under Xvfb the noisy nuclei give hundreds.
            canvas = viewer.screenshot(canvas_only=True)
            assert len(np.unique(canvas.reshape(-1, canvas.shape[-1]), axis=0)) > 100
    finally:
        viewer.close()
