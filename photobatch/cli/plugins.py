"""`photobatch plugins`, and the commands plugins add (``photobatch_register_commands``)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from photobatch.cli.base import cli, warn
from photobatch.core.hooks import loaded, plugin_infos, register_commands


@cli.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print as JSON, with the plugins that failed to load."
)
def plugins(as_json: bool) -> None:
    """The plugins loaded (photobatch's own, then those installed through the ``photobatch``
    entry point), each with its package, version and the hooks it implements."""
    infos = plugin_infos()
    if as_json:
        problems = loaded().problems
        click.echo(json.dumps({"plugins": [asdict(i) for i in infos], "problems": problems}))
        return
    for info in infos:
        hooks = ", ".join(info.hooks) or "no hooks"
        click.echo(f"{info.name} ({info.package} {info.version}): {hooks}")


def add_plugin_commands() -> None:
    """Let the plugins add their commands; say on stderr which plugin could not be loaded or
    could not add its commands (every command says so: photobatch runs without it)."""
    problems = list(loaded().problems)
    register_commands(cli, problems)
    for problem in problems:
        warn(f"photobatch: {problem}")
