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
    help="Where the encoder runs (default from config).",
)
@pass_context
def import_instagram(obj: Context, exports: tuple[Path, ...], device: str | None) -> None:
    """Import your Instagram history so hashtags can follow your style.

    EXPORTS are the zip file(s) or the unpacked folder of Instagram's "Download your
    information" in JSON format; all parts of a large export together. Photos are copied into
    the index's own folder beside it (index.db -> index.db.personal/instagram/), so the export
    can be deleted afterwards. Importing again is safe.
    """
    from photobatch.instagram.importer import import_instagram
    from photobatch.models.stack import model_set

    encoder = model_set(obj.config, device or obj.config.device).encoder
    with obj.index() as index:
        summary = import_instagram(index, list(exports), encoder, batch_size=obj.config.batch_size)
    for problem in summary.problems:
        warn(f"photobatch: {problem}")
    click.echo(summary.line())
