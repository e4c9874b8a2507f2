"""`photobatch import-instagram`: the user's own posts, for personal hashtags."""

from __future__ import annotations

from pathlib import Path

import click

from photobatch.cli.base import DEVICE, Context, cli, pass_context, warn


@cli.command("import-instagram")
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="List every media file the posts name that the export lacks (by default one line "
    "counts them).",
)
@pass_context
def import_instagram(
    obj: Context, exports: tuple[Path, ...], device: str | None, verbose: bool
) -> None:
    """Import your Instagram history so hashtags can follow your style.

    EXPORTS are the zip file(s) or the unpacked folder of Instagram's "Download your
    information" in JSON format; all parts of a large export together. Photos are copied into
    the index's own folder beside it (index.db -> index.db.personal/instagram/), so the export
    can be deleted afterwards. Importing again, with or without the media, or a later export
    that overlaps, updates the posts in place. What an export should not hold (a zip bomb, a
    photo over 100 MB, a symbolic link, more than 30 hashtags a post) is left out and reported.
    """
    from photobatch.instagram.importer import import_instagram
    from photobatch.models.stack import model_set

    analyzer = model_set(obj.config, device or obj.config.device)
    with obj.index() as index:
        summary = import_instagram(index, list(exports), analyzer, batch_size=obj.config.batch_size)
    for problem in [*summary.problems, *(summary.missing if verbose else [])]:
        warn(f"photobatch: {problem}")
    if not verbose and (line := summary.missing_line()):
        warn(line)
    click.echo(summary.line())
