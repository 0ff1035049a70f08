"""`seglab export`, `serve`, `ui` and `view`: shipping and looking at a trained model (see
`seglab.cli.main`, which registers these commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seglab.cli.options import console, examples
from seglab.deploy.limits import ServeLimits
from seglab.errors import ConfigError

_LIMITS = ServeLimits()  # the defaults of `seglab serve`'s limits


@examples(
    "seglab export --model runs/nuclei/model",
    "seglab export --model runs/nuclei/model --opset 17",
    "seglab export --format bioimageio --model nuclei --out nuclei.bioimageio.zip",
)
def export(
    model: Annotated[
        Path, typer.Option(help="Bundle folder (a run's model/); bioimageio: or `nuclei`.")
    ],
    export_format: Annotated[
        str, typer.Option("--format", help="onnx (into the bundle) or bioimageio (a zip).")
    ] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(help="bioimageio: the zip to write (default <bundle>.bioimageio.zip)."),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
) -> None:
    """Export a bundle to ONNX (`model/model.onnx`, dynamic batch and size) with a parity check,
    or to a bioimage.io model package for Fiji, QuPath, deepImageJ and ilastik.
    Then `seglab predict --backend onnx` runs the ONNX file without torch, and
    `seglab predict --model model.zip` runs the package.
    """
    if export_format == "bioimageio":
        from seglab.deploy.bioimageio import export_bioimageio

        package = export_bioimageio(model, out)
        console.print(
            f"wrote {package.path} in {package.seconds:.1f} s; parity with torch: ONNX "
            f"{package.onnx_diff:.2e}, TorchScript {package.torchscript_diff:.2e} (limit 1e-4)"
        )
        return
    if export_format != "onnx":
        raise ConfigError(f"--format: unknown '{export_format}'; valid: onnx, bioimageio")
    if out is not None:
        raise ConfigError("--out: only for --format bioimageio (ONNX is written into the bundle)")
    from seglab.deploy.export import export_onnx

    result = export_onnx(model, opset=opset)
    console.print(
        f"wrote {result.path} in {result.seconds:.1f} s; parity with torch: max abs difference "
        f"of probabilities {result.max_abs_diff:.2e} (limit 1e-4)"
    )


@examples(
    "seglab serve --model runs/nuclei/model --port 8000",
    "seglab serve --model otsu --host 0.0.0.0 --max-upload-mb 50",
)
def serve(
    model: Annotated[Path, typer.Option(help="Bundle folder, or `otsu`.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1)] = 1,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest accepted upload (MB).", min=0.001, max=10_000)
    ] = _LIMITS.max_upload_mb,
    max_pixels: Annotated[
        int,
        typer.Option(
            help="Most pixels of an upload, each side counted as at least 32 (narrow strips "
            "cost the network more than their pixels).",
            min=1,
        ),
    ] = _LIMITS.max_pixels,
    max_seconds: Annotated[
        float,
        typer.Option(
            help="Longest inference of one request (waiting included); then 503.",
            min=0.1,
            max=86_400,
        ),
    ] = _LIMITS.max_seconds,
) -> None:
    """Serve a model over HTTP: web page at /, POST /predict, GET /health, /model, /docs.
    Then open http://127.0.0.1:8000 (the port given).
    """
    from seglab.deploy.serve import run

    limits = ServeLimits(max_upload_mb, max_pixels, max_seconds)
    console.print(f"serving {model} on http://{host}:{port} (Ctrl+C to stop)")
    run(model, host=host, port=port, workers=workers, backend=backend, limits=limits)


@examples("seglab ui --runs runs", "seglab ui --runs runs/demo --port 5001")
def ui(
    runs: Annotated[Path, typer.Option(help="Folder holding the runs and mlflow.db.")] = Path(
        "runs"
    ),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 5000,
) -> None:
    """Open the MLflow UI on the local tracking store of a runs folder.
    Then browse http://127.0.0.1:5000 (the port given).
    """
    from seglab.training.tracking_ui import launch_ui

    console.print(f"MLflow UI on http://{host}:{port} (Ctrl+C to stop)")
    raise typer.Exit(launch_ui(runs, host, port))


@examples(
    "seglab view data/nuclei/test/img_0001/images/img_0001.png --model runs/nuclei/model",
    "seglab view cells.png --model otsu --truth cells_mask.png",
)
def view(
    image: Annotated[
        Path, typer.Argument(help="Image (PNG, JPEG, TIFF) or volume (TIFF stack, .npy, NIfTI).")
    ],
    model: Annotated[
        str | None, typer.Option(help="Bundle folder (a run's model/) or `otsu`.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth mask or label image to compare with.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Override the bundle's tuned threshold.")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
) -> None:
    """Open napari with the image, the probabilities, the mask and the instances (labels
    layers), the ground truth, and a dock widget to run other models on any image layer.

    Needs the viewer extra: `pip install 'seglab[viewer]'`.
    """
    from seglab.deploy.viewer_window import import_napari, open_viewer, require_display

    require_display()
    napari = import_napari()
    open_viewer(image, model, truth, threshold=threshold, backend=backend)
    napari.run()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(export)
    app.command()(serve)
    app.command()(ui)
    app.command()(view)
