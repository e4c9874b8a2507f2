"""Every command of the CLI is documented in the README, and every documented one exists."""

from __future__ import annotations

import re
from pathlib import Path

import click

from photobatch.cli import cli

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def command_names(group: click.Group, prefix: str = "photobatch") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(command_names(command, full))
        else:
            names.append(full)
    return names


def test_every_command_has_a_readme_section() -> None:
    documented = set(re.findall(r"^#+ `(photobatch [a-z -]+?)`", README, flags=re.M))
    assert set(command_names(cli)) == documented


def test_every_option_of_every_command_is_mentioned() -> None:
    def walk(group: click.Group) -> list[click.Command]:
        out: list[click.Command] = []
        for command in group.commands.values():
            out.extend(walk(command) if isinstance(command, click.Group) else [command])
        return out

    for command in [cli, *walk(cli)]:
        for param in command.params:
            if isinstance(param, click.Option):
                long = max(param.opts, key=len)
                assert long in README, f"{command.name}: {long} is not documented in README.md"
