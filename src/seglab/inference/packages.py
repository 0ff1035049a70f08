"""bioimage.io packages (zip) as bundles: `seglab predict --model model.zip`.

A package written by `seglab export --format bioimageio` carries seglab's own bundle files
(`seglab.json`, `weights.safetensors`, `model.onnx`); they are extracted once into a cache
folder named by the zip's digest and loaded as the bundle, so the predictions are exactly the
bundle's. Packages from elsewhere (no `seglab.json`) are refused: their pre-processing steps
are not run by seglab.

Example:
    >>> bundle = package_bundle("nuclei.bioimageio.zip")  # doctest: +SKIP
    >>> (bundle / "seglab.json").is_file()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from seglab.atomic_files import atomic_directory
from seglab.errors import ConfigError

__all__ = ["BUNDLE_FILES", "cache_root", "is_package", "package_bundle"]

BUNDLE_FILES = ("seglab.json", "weights.safetensors")
_OPTIONAL_FILES = ("model.onnx",)


def is_package(path: Path) -> bool:
    """Whether `path` names a bioimage.io package (a .zip file)."""
    return path.suffix.lower() == ".zip"


def cache_root() -> Path:
    """Where packages are extracted: `$SEGLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/seglab`, else
    `~/.cache/seglab`; a `bioimageio/` folder inside."""
    root = os.environ.get("SEGLAB_CACHE_DIR")
    if root:
        return Path(root) / "bioimageio"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "seglab" / "bioimageio"


def package_bundle(path: str | Path) -> Path:
    """The bundle folder of a seglab-exported bioimage.io package, extracted on first use.

    Raises:
        ConfigError: The file is missing, not a zip, not a bioimage.io package (no rdf.yaml) or
            not one exported by seglab (no seglab.json and weights.safetensors).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--model {path}: no such bioimage.io package (zip file)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    target = cache_root() / f"{path.stem}-{digest}"
    if all((target / name).is_file() for name in BUNDLE_FILES):
        return target
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            _check_members(path, names)
            with atomic_directory(target) as folder:
                for name in (*BUNDLE_FILES, *_OPTIONAL_FILES):
                    if name in names:
                        (folder / name).write_bytes(archive.read(name))
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"--model {path}: not a zip file ({exc})") from exc
    return target


def _check_members(path: Path, names: set[str]) -> None:
    if "rdf.yaml" not in names and "bioimageio.yaml" not in names:
        raise ConfigError(f"--model {path}: a zip without rdf.yaml is not a bioimage.io package")
    missing = [name for name in BUNDLE_FILES if name not in names]
    if missing:
        raise ConfigError(
            f"--model {path}: this bioimage.io package was not exported by seglab (it lacks "
            f"{', '.join(missing)}); seglab runs only packages written by `seglab export "
            f"--format bioimageio`; run others in bioimage.io software (e.g. bioimageio.core)"
        )
