"""`photobatch scan` and `photobatch watch`: bring the index and sidecars up to date."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photobatch.cli.base import DEVICE, Context, OneLineLog, cli, pass_context, warn
from photobatch.core.lock import ScanLock


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=False))
@click.option("--no-sidecars", is_flag=True, help="Update the index only; write no sidecars.")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config: auto = CUDA when present).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.option(
    "--reanalyse",
    is_flag=True,
    help="Run the models again on every photo under PATHS, even where the results are current.",
)
@pass_context
def scan(
    obj: Context,
    paths: tuple[Path, ...],
    no_sidecars: bool,
    device: str | None,
    quiet: bool,
    reanalyse: bool,
) -> None:
    """Scan photo folders (or files) once and bring the index and sidecars up to date.

    Incremental: unchanged photos cost one stat each; moved or renamed photos reuse their
    results; photos analysed by other model versions (a retrained captioner, a new beam size)
    are analysed again. Unreadable files are recorded with their error and counted; the exit
    code is 0 whenever the scan ran, 75 when another scan holds the index's lock.
    """
    from photobatch.scan.pipeline import Scanner

    with ScanLock(obj.config.index), obj.index() as index:
        scanner = Scanner(
            obj.config,
            index,
            sidecars=not no_sidecars,
            device=device,
            progress=not quiet,
        )
        summary = scanner.scan(list(paths), reanalyse=reanalyse)
    for problem in summary.problems:
        warn(f"photobatch: {problem}")
    if not quiet:
        click.echo(summary.line())


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    help="Seconds a file must stay unchanged before processing (config: watch.settle_seconds).",
)
@click.option("--poll", is_flag=True, help="Poll instead of using inotify (config: watch.poll).")
@click.option("--no-sidecars", is_flag=True, help="Update the index only; write no sidecars.")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config: auto = CUDA when present).",
)
@click.option(
    "--reanalyse",
    is_flag=True,
    help="At start, run the models again on every photo under PATHS, even where current.",
)
@pass_context
def watch(
    obj: Context,
    paths: tuple[Path, ...],
    settle: float | None,
    poll: bool,
    no_sidecars: bool,
    device: str | None,
    reanalyse: bool,
) -> None:
    """Scan, then keep watching the folders and process photos as they arrive.

    A photo is processed once it has stopped changing; moves keep their results; SIGTERM or
    Ctrl-C finish the batch in hand, release the lock and exit 0. Logs go to stderr.
    """
    import logging

    from photobatch.scan.pipeline import Scanner
    from photobatch.scan.watcher import Watcher

    log = logging.StreamHandler(sys.stderr)
    log.setFormatter(OneLineLog("%(asctime)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[log])
    with ScanLock(obj.config.index), obj.index() as index:
        scanner = Scanner(
            obj.config, index, sidecars=not no_sidecars, device=device, progress=False
        )
        Watcher(
            scanner,
            list(paths),
            settle=obj.config.watch.settle_seconds if settle is None else settle,
            poll=poll or obj.config.watch.poll,
        ).run(reanalyse=reanalyse)
