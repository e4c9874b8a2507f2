"""The architecture holds: imports point down the layers, and plugins need only the core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_in_pyproject_are_kept() -> None:
    # The contracts live in pyproject.toml ([tool.importlinter]); this is `lint-imports`, whose
    # report names each import chain that breaks one. It runs in a child process: import-linter
    # configures logging for the whole process, which would silence other tests' loggers.
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_plugins_import_only_the_core() -> None:
    # A plugin sees what a third-party one would: the hook interface and the records.
    for source in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("photobatch"):
                    assert name.startswith("photobatch.core"), f"{source}: imports {name}"
