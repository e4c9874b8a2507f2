"""`photobatch review` and `photobatch report`: see, fix and approve what the models said."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from photobatch.cli.base import Context, cli, pass_context, warn
from photobatch.core.errors import UserError
from photobatch.library.reviews import SHOWS, CardQuery

DAY = click.DateTime(formats=["%Y-%m-%d"])


@cli.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port (default: a free one)."
)
@click.option("--no-browser", is_flag=True, help="Print the address only; open no browser.")
@click.option("--no-sidecars", is_flag=True, help="Save reviews to the index only.")
@pass_context
def review(
    obj: Context, folders: tuple[Path, ...], port: int, no_browser: bool, no_sidecars: bool
) -> None:
    """A local page to approve, fix or reject captions and hashtags (Ctrl-C stops it).

    Serves the photos of the index (those below FOLDERS, if given) on 127.0.0.1 and prints the
    address with this run's secret token. What you approve or edit is yours: no later scan
    changes it, and the sidecars write it.

    \b
    Keys: j/k or the arrows move; a approves, r rejects, u takes the verdict back;
    e edits the caption, t adds hashtags, d edits the post draft, c copies the
    post; m shows where the model looked; n/p next and previous page; / searches.
    """
    import webbrowser

    from photobatch.review.server import ReviewServer, serve

    try:
        server = ReviewServer(obj.config, list(folders), sidecars=not no_sidecars, port=port)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    click.echo(f"photobatch review: {server.url}")
    click.echo("(Ctrl-C stops it)", err=True)
    if not no_browser and _graphical():
        webbrowser.open(server.url)
    serve(server)


def _graphical() -> bool:
    """Whether a graphical browser can open: without a display, Python's webbrowser would take
    over the terminal with a text browser, which cannot run the page."""
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


@cli.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--html",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The contact sheet to write: one HTML file, thumbnails inside.",
)
@click.option(
    "--show", type=click.Choice(SHOWS), default="all", show_default=True, help="Which photos."
)
@click.option("--since", type=DAY, help="Only photos a scan first found on or after this day.")
@pass_context
def report(obj: Context, folders: tuple[Path, ...], out: Path, show: str, since: object) -> None:
    """A contact sheet of the index (of FOLDERS, if given): caption, hashtags and review state
    of every photo, in one self-contained HTML file that loads nothing from anywhere.

    It opens offline and can be mailed as it is. After a nightly scan: photobatch report
    --html ~/photobatch-today.html --since $(date +%F) ~/Pictures
    """
    from photobatch.review.report import contact_sheet, write_sheet

    query = CardQuery(
        roots=tuple(f.expanduser().absolute() for f in folders),
        show=show,
        since=since.strftime("%Y-%m-%d") if since else None,  # type: ignore[attr-defined]
        threshold=obj.config.sidecars.min_caption_confidence,
        limit=None,
    )
    with obj.index(create=False) as index:
        html, count, problems = contact_sheet(obj.config, index, query)
    for problem in problems:
        warn(f"photobatch: {problem}")
    try:
        write_sheet(html, out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the contact sheet: {exc.strerror or exc}") from exc
    warn(f"photobatch: wrote a contact sheet of {count} photos to {out}")
