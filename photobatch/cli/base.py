"""The ``photobatch`` command line: parse options, call the library, report.

Every command here is a thin wrapper; the work lives in the modules it calls. Problems the user
can fix (bad config, unreadable index, a second scan) are raised as ``UserError`` anywhere below
and end, in :class:`Boundary` only, as a one-line message and an exit code, never a traceback.
"""

from __future__ import annotations

import codecs
import errno
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

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
    """A command group that reports what a user can act on as one line on stderr, never a
    traceback: a ``UserError`` from its commands, a stop signal, and output that cannot be
    written (a full disk behind ``>``, a terminal that cannot show a file name).

    Its subgroups are Boundaries too, so the innermost one reports, naming the full command;
    the outermost one also sets up the process (see ``invoke``).
    """

    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command. At the top: SIGTERM is delivered as ``Stopped`` (as Ctrl-C is, so
        cleanups run: the lock released, a Ray instance stopped, a half-written output removed),
        and stdout and stderr write what they cannot encode instead of raising
        (``OUTPUT_ERRORS``); their last bytes are written here, where a failure is reported."""
        outermost = ctx.parent is None
        if outermost:
            _prepare_process()
        try:
            result = super().invoke(ctx)
            if outermost:
                sys.stdout.flush()
            return result
        except UserError as exc:
            warn(f"photobatch: {exc.line(command_name(ctx))}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Ray's waits turn an interrupt into a plain KeyboardInterrupt: the handler's note
            # says which signal it was.
            signum = _stopped_by or signal.SIGINT
            warn(
                f"photobatch: {command_name(ctx)}: stopped by {signal.Signals(signum).name}; "
                "what was done so far is kept"
            )
            ctx.exit(128 + signum)
        except OSError as exc:
            # A write to a file photobatch opened names its file in a UserError; a write that
            # fails with no file to name went to standard output (``> /dev/full``, a full disk
            # behind ``>``). A closed pipe (``| head``) ends quietly: click's own handling.
            if exc.filename is not None or exc.errno not in OUTPUT_FAILURES:
                raise
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the exit's flush would fail again
            warn(f"photobatch: {command_name(ctx)}: cannot write the output: {exc.strerror}")
            ctx.exit(1)


class Stopped(KeyboardInterrupt):
    """A stop signal other than Ctrl-C (SIGTERM from cron's timeout, systemd, ``kill``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# Why a write to standard output fails when its file is full or gone.
OUTPUT_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})

# What standard output and error do with a character they cannot encode: a file name's
# undecodable bytes (Python's surrogate escapes) go out as those bytes, as ``ls`` shows them;
# anything else the encoding lacks, as a backslash escape.
OUTPUT_ERRORS = "photobatch-output"


def _output_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeError:
        return codecs.backslashreplace_errors(exc)


_stopped_by: int | None = None  # the stop signal received, if any


def _stop(signum: int, _frame: object) -> None:
    global _stopped_by
    _stopped_by = signum
    raise Stopped(signum)


def _prepare_process() -> None:
    global _stopped_by
    _stopped_by = None
    codecs.register_error(OUTPUT_ERRORS, _output_errors)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=OUTPUT_ERRORS)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)


def command_name(ctx: click.Context) -> str:
    """The full name of the command ``ctx`` runs, as the user typed it (``train personalizer``)."""
    names = [ctx.invoked_subcommand or ""]
    outer = ctx
    while outer.parent is not None:  # the root's name is the program's: left out
        names.insert(0, outer.info_name or "")
        outer = outer.parent
    return " ".join(names).strip()


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
@click.option(
    "--timestamps",
    is_flag=True,
    help="Start every line photobatch prints with the local time (for a log file, as cron's).",
)
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, index_path: Path | None, timestamps: bool
) -> None:
    """Captions, hashtags and XMP keywords for your photo library, computed on this machine.

    Global options come before the command. Exit codes: 0 done; 1 a problem you can fix, said
    in one line on stderr that names the file; 2 a command line photobatch does not
    understand; 75 another scan holds the index; 130 or 143 stopped by Ctrl-C or SIGTERM, with
    what was done so far kept.
    """
    if timestamps:
        sys.stdout, sys.stderr = Stamped(sys.stdout), Stamped(sys.stderr)
    ctx.obj = Context(load_config(config_path, index=index_path))


class Stamped(io.TextIOBase):
    """A text stream whose every line starts with the local time (ISO 8601, to the second, with
    the UTC offset): a log that cron appends to for years says when each line was written."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.line_start = True

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click tells text streams from binary ones by this
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        pieces = []
        for piece in text.splitlines(keepends=True):
            if self.line_start:
                pieces.append(datetime.now().astimezone().isoformat(timespec="seconds") + " ")
            pieces.append(piece)
            self.line_start = piece.endswith(("\n", "\r"))
        self.inner.write("".join(pieces))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.inner.errors


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
