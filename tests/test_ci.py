"""CI runs what the README tells a developer to run: the lint and format checks, then the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_ci_runs_the_readmes_test_command_which_checks_with_ruff_before_the_tests() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [command] = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == command
    # The development page repeats it, word for word.
    development = (ROOT / "docs" / "development.md").read_text(encoding="utf-8").splitlines()
    assert [line for line in development if line.startswith("python3 -m venv .venv")] == [command]
    steps = command.split(" && ")
    assert steps[-3:] == [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/python -m pytest",
    ]
