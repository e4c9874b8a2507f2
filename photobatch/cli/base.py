"""The ``photobatch`` command line: parse options, call the library, report.

Every command here is a thin wrapper; the work lives in the modules it calls. Problems the user
can fix (bad config, unreadable index, a second scan) are raised as ``UserError`` anywhere below
and end, in :class:`Boundary` only, as a one-line message and an exit code, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from photobatch import __version__
from photobatch.core.config import Config, load_config
from photobatch.core.errors import UserError
from photobatch.core.text import escape_controls
from photobatch.library.index import Index


class Context:
    """What the group resolves once for every command: the effective config."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @contextmanager
    def index(self, *, create: bool = True) -> Iterator[Index]:
        """The index (``create=False`` for commands that only read it), its personal state moved
        out of an older shared layout on first use."""
        from photobatch.instagram.migrate import migrate_personal_state

        index = Index(self.config.index, create=create)
        try:
            if moved := migrate_personal_state(index, self.config.personalizer_path):
                click.echo(moved, err=True)
            yield index
        finally:
            index.close()


pass_context = click.make_pass_decorator(Context)
DEVICE = click.Choice(["auto", "cpu", "cuda"])


class Boundary(click.Group):
    """A command group that reports a ``UserError`` from its commands as one line on stderr.

    Its subgroups are Boundaries too, so the innermost one reports, naming the full command.
    """

    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            names = [ctx.invoked_subcommand or ""]
            outer = ctx
            while outer.parent is not None:  # the root's name is the program's: left out
                names.insert(0, outer.info_name or "")
                outer = outer.parent
            warn(f"photobatch: {exc.line(' '.join(names).strip())}")
            ctx.exit(exc.exit_code)


def warn(message: str) -> None:
    """One line on stderr, whatever file names it holds (their control characters escaped)."""
    click.echo(escape_controls(message), err=True)


class OneLineLog(logging.Formatter):
    """Log records as ``warn`` prints: a file name in a message cannot forge a line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


@click.group(cls=Boundary)
@click.version_option(__version__, prog_name="photobatch")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $PHOTOBATCH_CONFIG, then ~/.config/photobatch/config.yaml).",
)
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Index database (default: $PHOTOBATCH_INDEX, then the config, then "
    "~/.local/share/photobatch/index.db).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, index_path: Path | None) -> None:
    """Captions, hashtags and XMP keywords for your photo library, computed on this machine."""
    ctx.obj = Context(load_config(config_path, index=index_path))


def caption_files(command: Callable[..., None]) -> Callable[..., None]:
    """The options naming a caption data set's files: captions, photos and splits."""
    options = [
        click.option(
            "--captions",
            required=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Captions: an image,caption CSV (as Flickr8k's) or a COCO-format caption JSON.",
        ),
        click.option(
            "--images",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="The folder holding the photos the captions name.",
        ),
        click.option(
            "--splits",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="An image,split CSV with train and val rows (default: the splits of a COCO "
            "JSON, else a fixed 5% of the photos held out as val).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def caption_data(command: Callable[..., None]) -> Callable[..., None]:
    """A caption data set and where its features are computed and cached, shared by ``train``
    and ``evaluate captioner``."""
    command = click.option(
        "--cache",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where encoder features are cached (default: photobatch's data folder).",
    )(command)
    command = click.option("--device", type=DEVICE, default="auto", show_default=True)(command)
    return caption_files(command)
