"""`model.init` / `train --init BUNDLE`: training starts from a bundle's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from seglab.bundle import load_bundle
from seglab.config import load_config
from seglab.errors import ConfigError
from seglab.training.run import train


@pytest.fixture(scope="module")
def first_run(nuclei_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = tiny_overrides(nuclei_dir, "train.epochs=1", "train.evaluate_test=false")
    out = tmp_path_factory.mktemp("init") / "first"
    return train(load_config(None, overrides), out, progress=False).bundle_path


def test_training_starts_from_the_bundles_weights(
    first_run: Path, nuclei_dir: Path, tmp_path: Path
) -> None:
    # A learning rate of ~0 keeps the weights where they start: the bundle's, not a fresh init.
    overrides = tiny_overrides(
        nuclei_dir, "train.epochs=1", "train.evaluate_test=false", "train.lr=1e-12"
    )
    start, _ = load_bundle(first_run)
    tuned = train(load_config(None, [*overrides, f"model.init={first_run}"]), tmp_path / "a")
    fresh = train(load_config(None, overrides), tmp_path / "b", progress=False)
    name = "stem.conv1.weight"
    tuned_weights = load_bundle(tuned.bundle_path)[0].state_dict()[name]
    assert torch.allclose(tuned_weights, start.state_dict()[name], atol=1e-6)
    assert not torch.allclose(load_bundle(fresh.bundle_path)[0].state_dict()[name], tuned_weights)


def test_an_init_of_another_architecture_is_refused_naming_the_difference(
    first_run: Path, nuclei_dir: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(nuclei_dir, "model.params.n_filters=2", f"model.init={first_run}")
    with pytest.raises(ConfigError, match="n_filters: 1 in the bundle, 2 here"):
        train(load_config(None, overrides), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model").exists()


def test_init_takes_the_bundles_architecture_target_and_normalisation(first_run: Path) -> None:
    from seglab.cli.options import TrainingOptions

    config = TrainingOptions(init=str(first_run), set_=["data.percentiles=[2,98]"]).load()
    kwargs = load_bundle(first_run)[1]["model"]["kwargs"]
    assert config.model.name == "unet"
    assert config.model.params == {k: v for k, v in kwargs.items() if k != "num_classes"}
    assert config.model.params["n_filters"] == 1
    assert config.data.target == "mask"
    assert config.model.init == str(first_run)
    assert tuple(config.data.percentiles) == (2, 98)  # --set still wins


def test_a_models_in_channels_wins_over_the_images(nuclei_dir: Path, tmp_path: Path) -> None:
    # The RGB nuclei are averaged to the one channel the model asks for (as `--init` of a
    # grey bundle does), not refused.
    overrides = tiny_overrides(
        nuclei_dir, "train.epochs=1", "train.evaluate_test=false", "model.params.in_channels=1"
    )
    result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    metadata = load_bundle(result.bundle_path)[1]
    assert metadata["in_channels"] == 1
    assert metadata["preprocessing"]["channels"] == 1
