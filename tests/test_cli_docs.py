"""Every command of the CLI has its README section, and that section documents its options."""

from __future__ import annotations

import re
from pathlib import Path

import click

from photobatch.cli import cli

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def sections(readme: str) -> dict[str, str]:
    """The text of each ``### `photobatch ...``` section of Commands, by command.

    ``photobatch`` keys the introduction before the first one, where the global options are.
    """
    commands = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `(photobatch [a-z -]+?)`\n", commands, flags=re.M)
    return {"photobatch": parts[0], **dict(zip(parts[1::2], parts[2::2], strict=True))}


def commands(group: click.Group, prefix: str = "photobatch") -> dict[str, click.Command]:
    """The commands a user runs, by full name; a subgroup's (``train``) under their own."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.update(commands(command, full))
        else:
            found[full] = command
    return found


def undocumented(readme: str) -> list[str]:
    """``command: --option`` for each option missing from its own command's section."""
    text = sections(readme)
    missing = []
    for name, command in {"photobatch": cli, **commands(cli)}.items():
        for param in command.params:
            if isinstance(param, click.Option):
                long = max(param.opts, key=len)
                # A whole option: --cache is not found inside --cache-dir.
                if not re.search(rf"(?<![\w-]){re.escape(long)}(?![\w-])", text[name]):
                    missing.append(f"{name}: {long}")
    return missing


def test_every_command_has_a_readme_section() -> None:
    assert set(commands(cli)) == set(sections(README)) - {"photobatch"}


def test_every_option_is_documented_in_its_own_commands_section() -> None:
    assert undocumented(README) == []


def test_an_option_documented_under_another_command_is_reported() -> None:
    scan, bench = sections(README)["photobatch scan"], sections(README)["photobatch bench"]
    moved = README.replace(scan, scan.replace("--quiet", "")).replace(bench, bench + "--quiet\n")
    assert "--quiet" in moved
    assert undocumented(moved) == ["photobatch scan: --quiet"]
