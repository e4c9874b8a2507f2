"""The architecture holds: imports point down the layers, and plugins need only the core."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter import cli as importlinter_cli

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_in_pyproject_are_kept() -> None:
    # The contracts live in pyproject.toml ([tool.importlinter]); this is `lint-imports`, whose
    # report (printed, so pytest shows it on failure) names each import chain that breaks one.
    status = importlinter_cli.lint_imports(
        config_filenames=[str(ROOT / "pyproject.toml")], no_cache=True, no_logo=True
    )
    assert status == importlinter_cli.EXIT_STATUS_SUCCESS


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
