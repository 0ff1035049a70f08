"""The ready configs of `examples/` (one per seed experiment): each one is valid, and each one
trains (or compares) end to end on tiny synthetic data, shrunk through `--set`-style overrides.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from seglab.config import Config, load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# One epoch of a narrow, shallow network, without MLflow: seconds on 2 CPU cores.
FAST = ["train.epochs=1", "data.batch_size=4", "tracking.enabled=false"]
TINY_UNET = ["model.params.n_filters=1", "model.params.depth=2"]


def _config(name: str, data: Path, *overrides: str) -> Config:
    return load_config(EXAMPLES / name, [f"data.root={data}", *FAST, *overrides])


def test_there_is_one_config_per_seed_experiment() -> None:
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert [name[:4] for name in names] == ["000_", "001_", "002_", "003_", "004_"]
    for name in names:
        load_config(EXAMPLES / name)  # valid as shipped, before any override


def test_000_unet_on_nuclei_is_the_seed_network(nuclei_dir: Path, tmp_path: Path) -> None:
    from seglab.training.run import train

    shipped = load_config(EXAMPLES / "000_unet_nuclei.yaml")
    assert shipped.model.params == {"n_filters": 4, "batch_norm": False}
    assert (shipped.loss.name, shipped.data.size) == ("bce", (128, 128))
    config = _config("000_unet_nuclei.yaml", nuclei_dir, "data.size=[32,32]", *TINY_UNET)
    result = train(config, tmp_path / "run", progress=False)
    assert result.test_metrics is not None and 0 <= result.test_metrics["dice"] <= 1


def test_001_unet_mini_compares_losses_on_streets(tmp_path: Path) -> None:
    from seglab.data.streets import write_streets
    from seglab.training.compare import compare

    shipped = load_config(EXAMPLES / "001_unet_mini_cityscapes.yaml")
    assert (shipped.model.name, shipped.loss.name) == ("unet_mini", "ce_dice")
    assert (shipped.data.augment.vflip, shipped.data.augment.affine_rotate) == (0.0, 10.0)
    write_streets(tmp_path / "streets", 6, height=32, width=64, seed=0)
    overrides = ["data.crop=null", "model.params.n_filters=2"]
    config = _config("001_unet_mini_cityscapes.yaml", tmp_path / "streets", *overrides)
    result = compare(config, None, tmp_path / "cmp", progress=False, losses=["dice", "tversky"])
    assert [row["loss"] for row in result.rows] == ["dice", "tversky"]
    assert all(0 <= row["miou"] <= 1 for row in result.rows)


def test_002_unet_on_circles_trains_with_dice_loss(tmp_path: Path) -> None:
    from seglab.data.synthetic import write_synthetic
    from seglab.training.run import train

    write_synthetic("circles", tmp_path / "circles", 12, size=32, seed=0)
    overrides = ["data.size=[32,32]", "model.params.n_filters=1"]
    config = _config("002_unet_circles.yaml", tmp_path / "circles", *overrides)
    assert (config.loss.name, config.model.params["depth"]) == ("dice", 3)
    result = train(config, tmp_path / "run", progress=False)
    assert 0 <= result.val_metrics["dice"] <= 1


def test_003_unet_extended_against_the_classical_baseline(nuclei_dir: Path, tmp_path: Path) -> None:
    from seglab.training.compare import compare

    config = _config("003_unet_extended_nuclei.yaml", nuclei_dir, *TINY_UNET)
    assert (config.model.name, config.data.normalize) == ("unet_extended", "percentile")
    result = compare(config, ["otsu", "unet_extended"], tmp_path / "cmp", progress=False)
    assert [row["model"] for row in result.rows] == ["otsu", "unet_extended"]
    assert all(0 <= row["dsb_map"] <= 1 for row in result.rows)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes, the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}i", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, n_train: int, n_test: int) -> None:
    """Digits as bright squares whose position encodes the label: learnable, 28 x 28."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        for image, label in zip(images, labels, strict=True):
            image[2 + 2 * label : 8 + 2 * label, 10:18] = 255
        _write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)


def test_004_cnn_on_mnist_files(tmp_path: Path) -> None:
    from seglab.training.run import train

    _write_mnist(tmp_path / "mnist", 60, 20)
    config = _config("004_cnn_mnist.yaml", tmp_path / "mnist")
    assert (config.task, config.model.name, config.train.patience) == ("classification", "cnn", 5)
    result = train(config, tmp_path / "run", progress=False)
    assert result.test_metrics is not None and 0 <= result.test_metrics["accuracy"] <= 1
