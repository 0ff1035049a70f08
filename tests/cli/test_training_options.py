"""`TrainingOptions`: the shared options of the training commands as config overrides."""

from __future__ import annotations

from pathlib import Path

from seglab.cli.options import TrainingOptions


def test_only_given_options_become_overrides_and_set_comes_last() -> None:
    options = TrainingOptions(
        data=Path("d"), layout="cityscapes", epochs=3, set_=["train.epochs=5"], no_track=True
    )
    assert options.overrides() == [
        "data.root=d",
        "data.layout=cityscapes",
        "train.epochs=3",
        "tracking.enabled=false",
        "train.epochs=5",
    ]
    assert TrainingOptions().overrides() == []


def test_load_applies_the_file_then_the_options(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("model: {name: unet_mini}\ntrain: {epochs: 7, lr: 0.01}\n")
    loaded = TrainingOptions(config=config, epochs=2, loss="dice").load()
    assert (loaded.model.name, loaded.loss.name) == ("unet_mini", "dice")
    assert (loaded.train.epochs, loaded.train.lr) == (2, 0.01)
