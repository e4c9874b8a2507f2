"""`photobatch scan` and `photobatch watch`: bring the index and sidecars up to date."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from photobatch.cli.base import DEVICE, Context, OneLineLog, Stamped, cli, pass_context, warn
from photobatch.core.config import override
from photobatch.core.lock import ScanLock


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=False))
@click.option("--no-sidecars", is_flag=True, help="Update the index only; write no sidecars.")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config: auto = CUDA when present).",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar and no summary line: problems only."
)
@click.option(
    "--reanalyse",
    is_flag=True,
    help="Run the models again on every photo under PATHS, even where the results are current.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    help="Where the heavy work runs: this process, or a Ray cluster (config: engine).",
)
@click.option(
    "--ray-address",
    metavar="HOST:PORT",
    help="The Ray cluster to join with --engine ray (config: ray.address; default: a new "
    "Ray instance on this machine).",
)
@pass_context
def scan(
    obj: Context,
    paths: tuple[Path, ...],
    no_sidecars: bool,
    device: str | None,
    quiet: bool,
    reanalyse: bool,
    engine: str | None,
    ray_address: str | None,
) -> None:
    """Scan photo folders (or files) once and bring the index and sidecars up to date.

    Made for cron. Incremental: an unchanged photo costs one stat; a moved, renamed or copied
    one reuses its results; photos analysed by other model versions (a retrained captioner, a
    new beam size) are analysed again. Shows a progress bar on a terminal and ends with one
    summary line. Unreadable files are recorded in the index with their error, listed on
    stderr and counted. Exit codes: 0 the scan ran (unreadable files included); 1 a problem to
    fix (a bad config, a path that does not exist, an unusable index); 75 another scan holds
    the index's lock. With --engine ray the hashing, decoding and models run on a Ray cluster,
    and this machine keeps the index and the sidecars.
    """
    from photobatch.scan.pipeline import Scanner

    config = obj.config
    if ray_address is not None:
        config = override(config, "ray", "address", ray_address, "--ray-address")
    with (
        ScanLock(config.index),
        obj.index() as index,
        Scanner(
            config,
            index,
            sidecars=not no_sidecars,
            device=device,
            progress=not quiet,
            engine=engine,  # type: ignore[arg-type]
        ) as scanner,
    ):
        summary = scanner.scan(list(paths), reanalyse=reanalyse)
    for problem in summary.problems:
        warn(f"photobatch: {problem}")
    if not quiet:
        click.echo(summary.line())


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--settle",
    type=float,
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

    Made to run for weeks (as a systemd user service). It catches up with a normal scan first,
    listening from before it, so a photo that arrives meanwhile waits its turn. A photo is
    processed once its size and mtime have stayed the same for --settle seconds; a moved or
    renamed photo or folder keeps its results; a deleted photo is marked missing, never
    removed; a watched folder that disappears (an unmounted drive) is waited for, and caught
    up with when it comes back. Network filesystems are polled. It holds the index's scan
    lock, so a cron scan of the same index exits with 75. SIGTERM or Ctrl-C finish the batch
    in hand, release the lock and exit 0. Logs go to stderr, one line per batch.
    """
    import logging

    from photobatch.scan.pipeline import Scanner
    from photobatch.scan.watcher import Watcher

    log = logging.StreamHandler(sys.stderr)
    stamped = isinstance(sys.stderr, Stamped)  # --timestamps: the stream stamps the lines
    log.setFormatter(OneLineLog(f"{'' if stamped else '%(asctime)s '}%(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[log])
    config = obj.config
    if settle is not None:
        config = override(config, "watch", "settle_seconds", settle, "--settle")
    with ScanLock(config.index), obj.index() as index:
        scanner = Scanner(
            config,
            index,
            sidecars=not no_sidecars,
            device=device,
            progress=False,
            engine="local",  # photos arrive a few at a time: not worth a cluster's round trips
        )
        Watcher(
            scanner,
            list(paths),
            settle=config.watch.settle_seconds,
            poll=poll or config.watch.poll,
        ).run(reanalyse=reanalyse)
