"""The ``photobatch`` command line, one module per command group over the library packages.

``photobatch.cli.base`` holds the group and what every command shares; importing the command
modules here registers their commands on it, then the plugins add theirs.
"""

from photobatch.cli import instagram, library, plugins, research, review, scan, train
from photobatch.cli.base import cli

plugins.add_plugin_commands()

__all__ = ["cli", "instagram", "library", "plugins", "research", "review", "scan", "train"]
