"""The CLI reference (docs/cli.md) is generated from the commands and current: every command has
its section there, showing its own options; the README names the everyday commands."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from cogapp import Cog

from photobatch.cli import cli

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REFERENCE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
# The pages with blocks that cog generates from the code (and what regenerates them).
GENERATED = ("docs/cli.md", "docs/configuration.md")
REGENERATE = f".venv/bin/cog -r {' '.join(GENERATED)}"


def sections(page: str) -> dict[str, str]:
    """The text of each ``## `photobatch ...``` section of the reference, by command."""
    parts = re.split(r"^#{2,3} `(photobatch(?: [a-z-]+)*)`\n", page, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def commands(group: click.Group, prefix: str = "photobatch") -> dict[str, click.Command]:
    """photobatch's own commands by full name, groups (``train``) and their commands included;
    those an installed plugin adds are its own to document."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if not (command.callback and command.callback.__module__.startswith("photobatch.")):
            continue
        full = f"{prefix} {name}"
        found[full] = command
        if isinstance(command, click.Group):
            found.update(commands(command, full))
    return found


def undocumented(page: str) -> list[str]:
    """``command: --option`` for each option missing from its own command's section."""
    text = sections(page)
    missing = []
    for name, command in {"photobatch": cli, **commands(cli)}.items():
        for param in command.params:
            if isinstance(param, click.Option):
                long = max(param.opts, key=len)
                # A whole option: --cache is not found inside --cache-dir.
                if not re.search(rf"(?<![\w-]){re.escape(long)}(?![\w-])", text.get(name, "")):
                    missing.append(f"{name}: {long}")
    return missing


def test_the_generated_pages_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    """``cog --check``: a command's help or config.example.yaml changed, the page did not."""
    pages = [str(ROOT / page) for page in GENERATED]
    status = Cog().main(["cog", "--check", "--diff", "--check-fail-msg", REGENERATE, *pages])
    assert status == 0, capsys.readouterr().out


def test_every_command_has_its_section_in_the_reference() -> None:
    assert set(sections(REFERENCE)) == {"photobatch", *commands(cli)}


def test_each_section_shows_its_own_commands_help() -> None:
    for name, text in sections(REFERENCE).items():
        assert re.search(rf"^Usage: {name} \[OPTIONS\]", text, flags=re.M), name


def test_every_option_is_documented_in_its_own_commands_section() -> None:
    assert undocumented(REFERENCE) == []


def test_an_option_documented_under_another_command_is_reported() -> None:
    scan, bench = sections(REFERENCE)["photobatch scan"], sections(REFERENCE)["photobatch bench"]
    moved = REFERENCE.replace(scan, scan.replace("--quiet", "")).replace(bench, bench + "--quiet\n")
    assert "--quiet" in moved
    assert undocumented(moved) == ["photobatch scan: --quiet"]


def test_the_readme_shows_the_everyday_commands_and_links_the_reference() -> None:
    for command in ("scan", "watch", "status", "show", "search", "export", "review"):
        assert re.search(rf"\bphotobatch {command}\b", README), command
    assert "(docs/cli.md)" in README
