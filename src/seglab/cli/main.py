"""The `seglab` command line: thin wrappers over the public API, no logic of its own.

Heavy imports (torch, Lightning, MLflow) happen inside the commands, so `seglab --help` is fast
and `predict` / `evaluate` never import Lightning or MLflow.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seglab import __version__
from seglab.cli import config as config_commands
from seglab.cli import data as data_commands
from seglab.cli import deploy as deploy_commands
from seglab.cli import experiments as experiment_commands
from seglab.cli import predict as predict_commands
from seglab.cli.failures import describe_bug, describe_os_error
from seglab.cli.options import (
    LayoutOption,
    OverlapOption,
    PrecisionOption,
    Progress,
    TileOption,
    TrainingOptions,
    TtaOption,
    apply_inference_settings,
    console,
    errors,
    examples,
    run_folder,
    training_options,
)
from seglab.errors import ConfigError, SeglabError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


app = typer.Typer(
    name="seglab",
    help="U-Net segmentation (and image classification): prepare data, train, tune, evaluate, "
    "compare, predict, export and serve.\n\n"
    "Start with `seglab demo`, then `seglab train --data DIR`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        console.print(f"seglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """seglab command line."""
    # seglab's own notes (precision chosen, loss weights, patch size, compile time) on stderr.
    logger = logging.getLogger("seglab")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes to the `sys.stderr` of the moment, not to the one there when it was made (the
    command runs again in the same process under tests and tools that swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current `sys.stderr`."""


def _metrics_table(title: str, metrics: Mapping[str, object]) -> Table:
    """Dataset-level scores beside their per-image means, then any other entries."""
    table = Table(title=title)
    for column in ("metric", "dataset", "mean per image"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, value in metrics.items():
        if key.endswith("_per_image") or isinstance(value, dict):
            continue
        per_image = metrics.get(f"{key}_per_image")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown, f"{per_image:.4f}" if isinstance(per_image, float) else "")
    for modality, values in metrics.get("per_modality", {}).items():  # type: ignore[attr-defined]
        scores = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
        table.add_row(f"[dim]{modality}[/] ({values['n_images']} images)", scores, "")
    for name, values in metrics.get("per_class", {}).items():  # type: ignore[attr-defined]
        if "iou" in values:  # segmentation classes: their IoU (None when a class is absent)
            iou = values["iou"]
            table.add_row(f"[dim]IoU {name}[/]", "n/a" if iou is None else f"{iou:.4f}", "")
        else:  # classification classes: precision, recall and F1
            scores = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float))
            table.add_row(f"[dim]class {name}[/] ({values.get('support', 0)} images)", scores, "")
    return table


@app.command()
@training_options
@examples(
    "seglab demo --out runs/demo",
    "seglab demo --epochs 5 --no-track --out runs/quick-demo",
    "seglab demo --task classification",
)
def demo(
    training: TrainingOptions,
    out: Annotated[Path, typer.Option(help="Folder for the data and the run.")] = Path("runs/demo"),
    n: Annotated[int, typer.Option(help="Number of synthetic images.", min=4)] = 240,
    progress: Progress = True,
) -> None:
    """Synthesize nuclei (or use `--data`), train a small U-Net, tune, evaluate and predict (a few
    minutes on CPU); or, with `--task classification`, train the seed-004 CNN on the bundled
    digits. The options given win over the demo's settings; a `--config` replaces them.
    """
    from seglab.demo import run_classification_demo, run_demo

    if training.task == "classification":
        outcome = run_classification_demo(
            out, training.overrides(), config=training.config, progress=progress
        )
        console.print(
            f"[bold green]Demo done[/] in {outcome.seconds:.0f} s: test accuracy "
            f"{outcome.test_score:.4f}"
        )
        console.print(f"  run folder : {outcome.run_dir}\n  report     : {outcome.report}")
        return
    result = run_demo(out, n, training.overrides(), config=training.config, progress=progress)
    console.print(
        f"[bold green]Demo done[/] in {result.seconds:.0f} s: test Dice {result.test_dice:.4f}"
    )
    console.print(f"  run folder : {result.run_dir}")
    console.print(f"  report     : {result.report}")
    console.print(f"  predictions: {result.predictions}")


@app.command()
@training_options
@examples(
    "seglab train --data data/nuclei --epochs 30 --out runs/nuclei",
    "seglab train --config examples/000_unet_nuclei.yaml --data data/nuclei --out runs/seed000",
    "seglab train --config exp.yaml --set train.lr=0.0003 --set model.params.n_filters=4",
    "seglab train --data data/streets --layout cityscapes --model unet_mini --loss dice",
    "seglab train --resume runs/nuclei --epochs 40",
    "seglab train --task classification --data digits --layout digits --model cnn",
)
def train(
    training: TrainingOptions,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/DATE-TIME).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue this run folder (only the options given change it)."),
    ] = None,
    progress: Progress = True,
) -> None:
    """Train a model, tune its threshold on val, write the bundle and evaluate on test."""
    if resume is not None:
        from seglab.training.run import resume as resume_run

        if training.config is not None:
            raise ConfigError(
                f"--resume continues {resume} with its own config.yaml: drop --config "
                "(options and --set still change it, e.g. --epochs)"
            )

        # Only what was given explicitly changes a resumed run (e.g. --epochs to go further).
        _report_training(resume_run(resume, training.overrides(), progress=progress))
        return
    # Lightning is imported only once the config is valid, so config errors come fast.
    cfg = training.load()
    from seglab.training.run import train as train_run

    _report_training(train_run(cfg, run_folder(out), progress=progress))


def _report_training(result: Any) -> None:
    """The validation and test scores, the run folder and the bundle of a finished run."""
    if not result.val_metrics:  # a DDP process other than rank 0: rank 0 reports
        return
    multiclass = "miou" in result.val_metrics  # classes by argmax: no threshold
    title = "validation" if multiclass else f"validation (threshold {result.threshold:.2f})"
    console.print(_metrics_table(title, result.val_metrics))
    if result.test_metrics:
        console.print(_metrics_table("test", result.test_metrics))
    console.print(f"run folder: {result.run_dir}\nbundle: {result.bundle_path}")


@app.command()
@examples(
    "seglab evaluate --model runs/nuclei/model --data data/nuclei --out runs/nuclei/eval/again",
    "seglab evaluate --model otsu --data data/nuclei --split test --out runs/otsu-eval",
    "seglab evaluate --model runs/cityscapes/model --data /data/cityscapes --split val "
    "--out runs/cityscapes/eval/val",
)
def evaluate(
    model: Annotated[Path, typer.Option(help="Bundle folder (a run's model/) or `otsu`.")],
    data: Annotated[Path, typer.Option(help="Data folder with masks.")],
    out: Annotated[Path, typer.Option(help="Output folder for metrics and report.")],
    split: Annotated[str, typer.Option(help="Split sub-folder to evaluate.")] = "test",
    layout: LayoutOption = "auto",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad samples.")] = False,
    tile: TileOption = None,
    overlap: OverlapOption = 0.5,
    tta: TtaOption = False,
    precision: PrecisionOption = "auto",
    progress: Progress = True,
) -> None:
    """Score a model on labelled data: metrics.json, per_image.csv, confusion images, report.

    A Cityscapes model (categories or train ids) is scored by the benchmark's rules and also gets
    its official scores: cityscapes_miou (19 classes), cityscapes_category_miou (7 categories).
    """
    from seglab.evaluation.segmentation import evaluate as evaluate_run
    from seglab.inference.loading import load_predictor

    predictor = load_predictor(model, precision=precision)
    apply_inference_settings(predictor, tile, overlap, tta)
    result = evaluate_run(
        predictor,
        data,
        out,
        layout=layout,
        split=split,
        skip_bad=skip_bad,
        progress=progress,
        bundle=model if model.is_dir() else None,
    )
    console.print(_metrics_table(f"{split} ({result.metrics['n_images']} images)", result.metrics))
    console.print(f"report: {result.out_dir / 'report.html'}")


def main() -> None:
    """Entry point: errors are printed as one message, never as a bare traceback
    (`seglab.cli.failures`)."""
    try:
        app()
    except SeglabError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        errors.print(f"[bold red]error:[/] {escape(describe_os_error(exc))}", soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        errors.print(f"[bold red]error:[/] {escape(describe_bug(exc))}", soft_wrap=True)
        sys.exit(1)


# Registered last, so `seglab --help` lists the workflow (demo, train, ...) first.
predict_commands.register(app)
experiment_commands.register(app)
data_commands.register(app, data_app)
deploy_commands.register(app)
config_commands.register(app)
