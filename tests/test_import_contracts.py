"""The import contracts of pyproject.toml (`[tool.importlinter]`) hold: run `lint-imports`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import seglab

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(seglab.__file__).resolve().parents[1]


def lint_imports(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on `config`, in a fresh interpreter that finds seglab in `SRC`."""
    pytest.importorskip("importlinter", reason="import-linter is in the `dev` extra")
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo", str(config)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_the_import_contracts_are_kept() -> None:
    completed = lint_imports(ROOT / "pyproject.toml", ROOT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert " 0 broken" in completed.stdout


def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    # The same checker on a contract seglab breaks (the CLI imports training): it must fail.
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "seglab"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "cli without training"\ntype = "forbidden"\n'
        'source_modules = ["seglab.cli.main"]\nforbidden_modules = ["seglab.training.run"]\n'
    )
    completed = lint_imports(config, tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "cli without training BROKEN" in completed.stdout
