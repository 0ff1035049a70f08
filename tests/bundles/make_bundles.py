"""Write tiny bundles of each kind, with seglab as of commit d7c320a, and their predictions.

Runs with that commit's code only (see README.md beside it):
    PYTHONPATH=/tmp/old/src python tests/bundles/make_bundles.py tests/bundles /tmp/work
"""

import shutil
import sys
from pathlib import Path

import numpy as np

from seglab import load_config, train, write_synthetic
from seglab.data.classification import load_digits
from seglab.data.streets import write_streets
from seglab.data.volumes import write_blobs3d
from seglab.inference.loading import load_predictor

COMMON = ["train.epochs=1", "tracking.enabled=false", "train.evaluate_test=false"]


def main(out: Path, work: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_synthetic("circles", work / "circles", n=12, size=32, seed=0)
    write_streets(work / "streets", n=12, height=32, width=64, seed=0)
    write_blobs3d(work / "blobs", 6, size=16, seed=0)
    rng = np.random.default_rng(0)
    runs = {
        "binary": (
            [
                f"data.root={work / 'circles'}",
                "model.name=unet",
                "model.params={n_filters: 2, depth: 2}",
                "data.batch_size=4",
            ],
            (rng.random((32, 32, 3)) * 255).astype(np.uint8),
        ),
        "multiclass": (
            [
                f"data.root={work / 'streets'}",
                "model.name=unet_mini",
                "model.params={n_filters: 2}",
                "data.batch_size=4",
                "data.augment.rotate90=false",
            ],
            (rng.random((32, 64, 3)) * 255).astype(np.uint8),
        ),
        "volumes": (
            [
                f"data.root={work / 'blobs'}",
                "data.layout=volumes",
                "model.name=unet3d",
                "model.params={n_filters: 1, depth: 2}",
                "data.patch=[16,16,16]",
                "data.batch_size=2",
                "data.patches_per_volume=1",
            ],
            (rng.random((16, 16, 16)) * 255).astype(np.uint8),
        ),
        "classification": (
            ["task=classification", "data.layout=digits"],
            load_digits()["all"].images[:4],
        ),
    }
    for name, (overrides, image) in runs.items():
        config = load_config(None, [*COMMON, "train.precision=32", *overrides])
        result = train(config, work / "runs" / name, progress=False)
        shutil.copytree(result.bundle_path, out / name)
        predictor = load_predictor(out / name)
        if name in ("binary", "multiclass"):
            probabilities = predictor.predict_channels(image)
        else:
            probabilities = predictor.predict_proba(image)
        np.save(out / name / "input.npy", image)
        np.save(out / name / "probabilities.npy", probabilities.astype(np.float32))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
