"""`seglab config show`: the resolved configuration, as commented YAML (see `seglab.cli.main`,
which registers this command)."""

from __future__ import annotations

from typing import Annotated

import typer

from seglab.cli.options import TrainingOptions, examples, training_options


@training_options
@examples(
    "seglab config show --defaults",
    "seglab config show --config examples/001_unet_mini_cityscapes.yaml",
    "seglab config show --data data/streets --layout cityscapes --set train.lr=0.0003",
    "seglab config show --task classification",
)
def config_show(
    training: TrainingOptions,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="The defaults, without any file or option.")
    ] = False,
) -> None:
    """Print the configuration a training command would run with these options: every key, each
    with a comment saying what it is. Save it to start a config file of your own."""
    from seglab.config import Config, commented_yaml
    from seglab.errors import ConfigError

    if defaults and (training.overrides() or training.config is not None):
        raise ConfigError("--defaults shows the defaults alone: drop --config, --set and the rest")
    typer.echo(commented_yaml(Config() if defaults else training.load()), nl=False)


def register(app: typer.Typer) -> None:
    """Add the `config` command group to the app."""
    config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
    config_app.command("show")(config_show)
    app.add_typer(config_app, name="config")
