"""The ``photobatch`` command line, one module per command group over the library packages.

``photobatch.cli.base`` holds the group and what every command shares; importing the command
modules here registers their commands on it.
"""

from photobatch.cli import instagram, library, research, review, scan, train
from photobatch.cli.base import cli

__all__ = ["cli", "instagram", "library", "research", "review", "scan", "train"]
