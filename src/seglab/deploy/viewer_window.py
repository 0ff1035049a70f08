"""The napari window: importing napari and Qt with clear errors, an OpenGL check, and
`open_viewer`, which shows an image, its prediction and its truth (layers from
`seglab.deploy.viewer`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from seglab.data.volumes import volume_stem
from seglab.deploy.viewer import (
    LayerData,
    build_layers,
    load_segmenter,
    predict_view,
    read_truth,
    read_view_image,
    wants_instances,
)
from seglab.errors import SeglabError

INSTALL_HINT = "pip install 'seglab[viewer]'"
# The Debian packages Qt and napari's OpenGL canvas load (from ldd of PyQt6 and its plugins).
logger = logging.getLogger(__name__)

SYSTEM_PACKAGES = "libgl1 libegl1 libgl1-mesa-dri libxkbcommon0 libfontconfig1 libdbus-1-3"


def import_napari() -> ModuleType:
    """napari, with a Qt binding that loads.

    Raises:
        SeglabError: napari or Qt is not installed, or Qt cannot load (missing system
            libraries); the message says how to install them.
    """
    try:
        import napari
        from qtpy import QtWidgets  # noqa: F401  # fails here, not deep inside napari
    except ImportError as exc:
        # A binding that is installed but cannot find a system library names the missing .so.
        missing_library = ".so" in str(exc)
        hint = f"apt-get install {SYSTEM_PACKAGES}" if missing_library else INSTALL_HINT
        raise SeglabError(
            f"the viewer needs napari and a Qt binding ({exc}); install them with {hint}"
        ) from None
    return napari


def require_display(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to start Qt where it would abort (exit 134, plugin noise): on Linux, with the
    default (X11) platform and neither `DISPLAY` nor `WAYLAND_DISPLAY` set.

    Raises:
        SeglabError: No display; the message says how to get one.
    """
    if not sys.platform.startswith("linux"):
        return
    platform = environ.get("QT_QPA_PLATFORM", "xcb")
    if platform.startswith("xcb") and not (
        environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
    ):
        raise SeglabError(
            "seglab view opens a window and this session has no display (DISPLAY is not set); "
            "run it on a desktop, over `ssh -X`, or under Xvfb (xvfb-run -a seglab view ...)"
        )


def require_opengl() -> None:
    """Check that Qt can create the OpenGL context napari draws with.

    Without a display there is none (the ``offscreen`` platform has one only through an X
    server, and even then draws no canvas): run under Xvfb, ``xvfb-run -a seglab view ...``.

    Raises:
        SeglabError: No OpenGL context can be made; the message says how to get one.
    """
    from napari.qt import get_qapp
    from qtpy.QtGui import QOpenGLContext

    get_qapp()
    if not QOpenGLContext().create():
        platform = os.environ.get("QT_QPA_PLATFORM", "the default platform")
        raise SeglabError(
            f"napari needs OpenGL, and Qt cannot create an OpenGL context on {platform}; "
            "run it on a machine with a display, or under Xvfb for screenshots and tests "
            "(apt-get install xvfb, then xvfb-run -a seglab view ...)"
        )


def add_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """Add layers to a napari viewer; a layer of the same name is updated in place.

    Returns:
        The napari layers, in the order given.
    """
    added = []
    for layer in layers:
        if layer.name in viewer.layers:
            existing = viewer.layers[layer.name]
            existing.data = layer.data
            added.append(existing)
            continue
        add = viewer.add_image if layer.kind == "image" else viewer.add_labels
        created = add(layer.data, name=layer.name, **layer.options)
        for attribute, value in layer.attributes.items():
            setattr(created, attribute, value)
        added.append(created)
    return added


def open_viewer(
    image_path: str | Path,
    model: str | Path | None = None,
    truth: str | Path | None = None,
    *,
    threshold: float | None = None,
    device: str = "auto",
    backend: str = "auto",
    show: bool = True,
) -> Any:
    """Open napari with an image, a model's prediction and the ground truth, and the seglab
    dock widget to run other models.

    Args:
        image_path: Image or volume (see `read_view_image`).
        model: Bundle folder or baseline name (e.g. "otsu"); None shows the image alone.
        truth: Ground-truth mask or label image of the same size.
        threshold: Overrides the bundle's tuned threshold.
        device: Torch device for the model ("auto", "cpu", "cuda").
        backend: "auto", "torch" or "onnx".
        show: Show the window (False for scripts and tests: screenshots still work).

    Returns:
        The `napari.Viewer`; run `napari.run()` to hand control to its window.

    Raises:
        SeglabError: napari or Qt is missing, a file is unreadable, or the model cannot load.
    """
    napari = import_napari()
    require_opengl()
    image_path = Path(image_path)
    image = read_view_image(image_path)
    truth_data = read_truth(truth, image.shape[:-1]) if truth is not None else None
    prediction = None
    if model is not None:
        predictor = load_segmenter(model, device, backend)
        if threshold is not None:
            predictor.threshold = threshold
        prediction = predict_view(predictor, image, wants_instances(predictor))
    from seglab.deploy.napari_plugin import SegmentWidget

    viewer = napari.Viewer(title=f"seglab - {image_path.name}", show=show)
    name = volume_stem(image_path)
    add_layers(viewer, build_layers(image, name, prediction, truth_data))
    viewer.layers.selection.active = viewer.layers[name]
    widget = SegmentWidget(viewer, model=model)
    viewer.window.add_dock_widget(widget, name="seglab", area="right")
    logger.info("viewing %s with %d layers", image_path, len(viewer.layers))
    return viewer
