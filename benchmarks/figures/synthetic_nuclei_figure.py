"""The README's figure of synthetic nuclei beside the real images they imitate.

Rows: scikit-image's real `immunohistochemistry` (stained tissue) crops and `cell` (a grey,
phase-contrast-like cell), then samples of each rendering of
`seglab.data.synthetic.make_realistic_nuclei` (IHC right below the real IHC crops, then H&E,
bright-field, fluorescence), 256 x 256, one seed per rendering; each title gives the number of
nuclei (the glands, membranes, debris and blobs are background). Both real images ship with
scikit-image (offline); nothing is downloaded.

Example:
    python benchmarks/figures/synthetic_nuclei_figure.py --out docs/figures/synthetic_nuclei.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from seglab.data.synthetic import make_realistic_nuclei

COLUMNS = 4
SIDE = 256


def real_crops() -> list[tuple[str, np.ndarray]]:
    """Crops of the real images, about `SIDE` pixels square (`cell` at half size, whole)."""
    tissue = data.immunohistochemistry()
    cell = np.repeat(data.cell()[..., None], 3, axis=2)
    whole_cell = cell[::2, ::2][: SIDE + 74, : SIDE + 19]
    return [
        ("real: immunohistochemistry", tissue[:SIDE, :SIDE]),
        ("real: immunohistochemistry", tissue[SIDE:, SIDE:]),
        ("real: immunohistochemistry", tissue[SIDE:, :SIDE]),
        ("real: cell, whole (half size)", whole_cell),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/synthetic_nuclei.png"))
    args = parser.parse_args()
    rows = [real_crops()]
    # A seed per rendering: one seed would show the same nuclei in every row.
    for seed, modality in enumerate(("ihc", "he", "brightfield", "fluorescence"), start=1):
        samples = make_realistic_nuclei(COLUMNS, size=SIDE, seed=seed, modality=modality)
        rows.append(
            [(f"synthetic: {modality}, {labels.max()} nuclei", image) for image, labels in samples]
        )
    figure, axes = plt.subplots(len(rows), COLUMNS, figsize=(2.6 * COLUMNS, 2.75 * len(rows)))
    for row, cells in zip(axes, rows, strict=True):
        for axis, (title, image) in zip(row, cells, strict=True):
            axis.imshow(image)
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=72)


if __name__ == "__main__":
    main()
