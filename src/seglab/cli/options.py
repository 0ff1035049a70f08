"""Options, consoles and helpers shared by the command modules.

The commands that train (`train`, `compare`, `cv`, `demo`) share one vocabulary: the options of
`TrainingOptions`, added to each of them by `training_options` and turned into config overrides
in one place (`TrainingOptions.overrides`). `examples` writes every command's examples the same
way, one per line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # seglab.config is imported when a command runs, not for `--help`
    from seglab.config import Config

console = Console()
errors = Console(stderr=True)

Command = TypeVar("Command", bound=Callable[..., None])

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
TileOption = Annotated[
    int | None,
    typer.Option(help="Sliding-window tile side (default: the bundle's, 1024).", min=4),
]
OverlapOption = Annotated[
    float, typer.Option(help="Sliding-window tile overlap, from 0 to 0.95.", min=0.0, max=0.95)
]
TtaOption = Annotated[bool, typer.Option("--tta", help="Average over flipped predictions.")]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="torch backend: auto (bf16 where the CPU/GPU has it natively, else fp32), 32 or bf16."
    ),
]


def _probability(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:  # NaN fails the comparison too
        raise typer.BadParameter(f"{value} is not a probability; give a number from 0 to 1")
    return value


ThresholdOption = Annotated[
    float | None,
    typer.Option(help="Override the bundle's tuned threshold (0 to 1).", callback=_probability),
]


_LAYOUTS = (
    "auto, folders, dsb2018, cityscapes, volumes; idx, class_folders, digits (classification)"
)
LayoutOption = Annotated[str, typer.Option("--layout", help=f"Data layout: {_LAYOUTS}.")]
# The panel of `--help` that lists the options every training command shares.
TRAINING_PANEL = "Data, model and training (the same on train, compare, cv, demo, config show)"


def _shared(help_text: str, *names: str, **checks: Any) -> Any:
    return typer.Option(*names, help=help_text, rich_help_panel=TRAINING_PANEL, **checks)


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """The options of every command that trains, as one value; None means "not given"."""

    data: Annotated[Path | None, _shared("Data folder (data.root).")] = None
    layout: Annotated[str | None, _shared(f"Data layout (data.layout): {_LAYOUTS}.")] = None
    task: Annotated[str | None, _shared("segmentation (default) or classification (task).")] = None
    model: Annotated[
        str | None, _shared("Model (model.name), e.g. unet, unet_mini, unet_extended, cnn.")
    ] = None
    loss: Annotated[
        str | None, _shared("Loss (loss.name), e.g. bce_dice, dice, ce_dice, tversky.")
    ] = None
    epochs: Annotated[int | None, _shared("Maximum number of epochs (train.epochs).", min=1)] = None
    init: Annotated[
        str | None,
        _shared(
            "Start from this bundle's weights, architecture and normalisation, e.g. nuclei "
            "(model.init)."
        ),
    ] = None
    config: Annotated[Path | None, _shared("YAML config file (see examples/).")] = None
    set_: Annotated[
        list[str] | None,
        _shared("Override any key, e.g. train.lr=0.001 (repeat; wins over the rest).", "--set"),
    ] = None
    tracking_uri: Annotated[
        str | None, _shared("MLflow server URI (default: the runs folder's own store).")
    ] = None
    no_track: Annotated[bool, _shared("Do not log to MLflow.", "--no-track")] = False
    skip_bad: Annotated[
        bool, _shared("Skip unreadable samples (listed in skipped.json).", "--skip-bad")
    ] = False

    def overrides(self) -> list[str]:
        """The options given, as `key=value` config overrides; the `--set` ones come last, and
        so win."""
        options = {
            "task": self.task,
            "data.root": self.data,
            "data.layout": self.layout,
            "model.name": self.model,
            "loss.name": self.loss,
            "train.epochs": self.epochs,
            "model.init": self.init,
            "tracking.uri": self.tracking_uri,
        }
        given = [f"{key}={value}" for key, value in options.items() if value is not None]
        if self.init is not None:
            from seglab.training.init_weights import init_overrides

            given = [*init_overrides(self.init), *given]
        given += ["tracking.enabled=false"] if self.no_track else []
        given += ["data.skip_bad=true"] if self.skip_bad else []
        return [*given, *(self.set_ or [])]

    def load(self) -> Config:
        """The config file (or the defaults) with the options given."""
        from seglab.config import load_config

        return load_config(self.config, self.overrides())


def training_options(command: Command) -> Command:
    """Give `command` the options of `TrainingOptions`, passed to it as one `training` argument.

    The command's own parameters come first in `--help`; the shared ones follow in their panel.
    """
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=a)
        for f, a in zip(
            dataclasses.fields(TrainingOptions),
            inspect.get_annotations(TrainingOptions, eval_str=True).values(),
            strict=True,
        )
    ]
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name != "training"
    ]

    @functools.wraps(command)
    def run(**given: Any) -> None:
        values = {p.name: given.pop(p.name) for p in shared}
        command(**given, training=TrainingOptions(**values))

    parameters = [*own, *shared]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run  # type: ignore[return-value]


def examples(*commands: str) -> Callable[[Command], Command]:
    """Append `commands` to the command's help as a list, one example per line."""

    def attach(command: Command) -> Command:
        items = "\n".join(f"* `{line}`" for line in commands)
        command.__doc__ = f"{inspect.cleandoc(command.__doc__ or '')}\n\n**Examples**\n\n{items}"
        return command

    return attach


def run_folder(out: Path | None, prefix: str = "") -> Path:
    """`out`, or by default `runs/<prefix><date>-<time>`."""
    return out or Path("runs") / time.strftime(f"{prefix}%Y%m%d-%H%M%S")


def apply_inference_settings(predictor: Any, tile: int | None, overlap: float, tta: bool) -> None:
    """Apply sliding-window and TTA options to network predictors (baselines have none)."""
    if hasattr(predictor, "tile"):
        if tile is not None:
            predictor.tile = tile
        predictor.overlap = overlap
        predictor.tta = tta
