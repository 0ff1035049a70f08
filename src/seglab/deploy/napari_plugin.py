"""The napari dock widget: run a seglab model on an image layer (Plugins > Segment (seglab)).

Registered by the npe2 manifest ``seglab/napari.yaml`` (entry point ``napari.manifest``), and
docked by `seglab view`. The prediction runs in a worker thread (napari's `create_worker`), so
the window stays responsive; its layers are added on the GUI thread when it returns. Needs the
``viewer`` extra: ``pip install 'seglab[viewer]'``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from napari.layers import Image
from napari.qt.threading import create_worker

from seglab.deploy.viewer import Segmentation, layer_image, load_segmenter, segment
from seglab.deploy.viewer_window import add_layers
from seglab.errors import SeglabError

if TYPE_CHECKING:
    import napari.viewer
    from napari.qt.threading import FunctionWorker

logger = logging.getLogger(__name__)

_READY = "choose a bundle folder (or type otsu), an image layer, then Run"


class SegmentWidget(Container):
    """A bundle chooser, an image-layer selector, a Run button and a status line.

    Run predicts the chosen layer in a worker thread and adds (or updates) the layers
    "<layer> probabilities", "<layer> mask" and, for models that separate objects,
    "<layer> instances"; the status line then gives the inference time.

    Args:
        napari_viewer: The viewer (napari passes it when it docks the widget).
        model: Bundle folder or baseline name to start with.

    Example:
        >>> widget = SegmentWidget(viewer, model="runs/nuclei/model")  # doctest: +SKIP
        >>> viewer.window.add_dock_widget(widget)  # doctest: +SKIP
    """

    def __init__(
        self, napari_viewer: napari.viewer.Viewer, model: str | Path | None = None
    ) -> None:
        super().__init__()
        self.viewer = napari_viewer
        start = Path(model) if model is not None else None
        self.bundle = FileEdit(label="bundle", mode=FileDialogMode.EXISTING_DIRECTORY, value=start)
        self.image = ComboBox(label="image", choices=self._image_layers, nullable=True)
        self.run_button = PushButton(text="Run")
        self.status = Label(value=_READY)
        self.status.native.setWordWrap(True)  # long errors wrap instead of widening the dock
        self.extend([self.bundle, self.image, self.run_button, self.status])
        self.worker: FunctionWorker | None = None
        self.run_button.changed.connect(self.run)
        layers = napari_viewer.layers
        layers.events.inserted.connect(self.reset_choices)
        layers.events.removed.connect(self.reset_choices)
        layers.selection.events.active.connect(self._follow_selection)
        self._follow_selection()

    @property
    def running(self) -> bool:
        """Whether a prediction is under way."""
        return self.worker is not None

    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        # Own output layers are images too, but predicting probabilities makes no sense.
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.name.endswith(" probabilities")
        ]

    def _follow_selection(self, _event: Any = None) -> None:
        self.image.reset_choices()
        active = self.viewer.layers.selection.active
        if active is not None and active in self.image.choices:
            self.image.value = active

    def run(self) -> FunctionWorker | None:
        """Predict the chosen layer in a worker thread.

        Returns:
            The started worker, or None when nothing was started (no layer, no bundle, a
            prediction already running); the status line says why.
        """
        layer = self.image.value
        model = str(self.bundle.value).strip()
        if self.running:
            return None
        if layer is None or model in ("", "."):
            self.status.value = _READY
            return None
        try:
            image = layer_image(layer.data, layer.rgb)
        except SeglabError as exc:
            self.status.value = f"{layer.name}: {exc}"
            return None
        self.status.value = f"running {Path(model).name} on {layer.name}..."
        self.run_button.enabled = False
        # Errors are shown in the status line, not re-raised in the GUI thread.
        worker = create_worker(
            self._segment, model, image, layer.name, _start_thread=False, _ignore_errors=True
        )
        worker.returned.connect(self._show)
        worker.errored.connect(self._fail)
        worker.finished.connect(self._done)
        self.worker = worker
        worker.start()
        return worker

    @staticmethod
    def _segment(model: str, image: Any, name: str) -> Segmentation:
        # Loaded on every run (a fraction of a second), so a retrained bundle is never stale.
        return segment(load_segmenter(model), image, name)

    def _show(self, result: Segmentation) -> None:
        add_layers(self.viewer, result.layers)
        self.status.value = result.summary()

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, SeglabError):
            logger.error("prediction failed", exc_info=exc)
        self.status.value = f"error: {exc}"

    def _done(self) -> None:
        self.worker = None
        self.run_button.enabled = True
