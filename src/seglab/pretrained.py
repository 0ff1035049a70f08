"""Bundles shipped inside the package, usable by name wherever a bundle folder goes.

`nuclei` is the generalist nuclei model (trained on seglab's synthetic nuclei only, by
`benchmarks/train_generalist.py`): `seglab predict --model nuclei --instances images/`,
`seglab train --init nuclei --data mine/`. A folder of that name in the working directory wins
over the shipped bundle.

Example:
    >>> bundle_path("nuclei").name
    'nuclei'
    >>> bundle_path("runs/exp1/model")
    PosixPath('runs/exp1/model')
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED", "bundle_path"]

_FOLDER = Path(__file__).parent / "pretrained_bundles"
PRETRAINED = ("nuclei",)


def bundle_path(model: str | Path) -> Path:
    """The shipped bundle's folder when `model` names one (and no such path exists), else
    `model` itself as a path."""
    path = Path(model)
    if not path.exists() and str(model) in PRETRAINED:
        return _FOLDER / str(model)
    return path
