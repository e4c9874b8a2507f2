"""Reading the index: `export`, `status`, `show` and `search`."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from photobatch.cli.base import Context, cli, pass_context, warn
from photobatch.core.errors import UserError
from photobatch.library.index import Index
from photobatch.library.outputs import check_output, output_file
from photobatch.library.schema import EXPORT_COLUMNS


@cli.command()
@click.option(
    "--table",
    type=click.Choice(sorted(EXPORT_COLUMNS)),
    default="photos",
    show_default=True,
    help="What to export.",
)
@click.option("--format", "fmt", required=True, help="Output format: csv, json or jsonl.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
@click.option(
    "--approved", is_flag=True, help="Only the photos you approved in 'photobatch review'."
)
@pass_context
def export(obj: Context, table: str, fmt: str, output: Path | None, approved: bool) -> None:
    """Export the index: one row per image file found, failures included.

    Captions, hashtags and post drafts are as you reviewed them (the models' where you did not);
    the review column says what you decided, model_caption and model_hashtags what the models
    say now. Formats come from exporter plugins. In CSV, a cell a spreadsheet would run as a
    formula starts with '. With -o the file is replaced in one rename once the export is
    complete, and never one that is not an export (the index, a photo, a sidecar).
    """
    from photobatch.core.hooks import exporters

    available = exporters()
    if fmt not in available:
        raise click.BadParameter(
            f"'{fmt}' is not an installed format (choose from {', '.join(sorted(available))})",
            param_hint="--format",
        )
    with obj.index(create=False) as index:
        rows = index.export_rows(table, approved=approved)
        columns = EXPORT_COLUMNS[table]
        if output is None:
            available[fmt].export(rows, columns, sys.stdout)
            return
        target = check_output(output, index, obj.config.sidecars)
        with output_file(output, target, "the export") as raw:
            # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
            out = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
            count = available[fmt].export(rows, columns, out)
            out.flush()
            out.detach()  # the file is the replacement's to close
    warn(f"photobatch: wrote {count} rows to {output}")


@cli.command()
@pass_context
def status(obj: Context) -> None:
    """Counts, models in use (and the current versions) and the last scan.

    Also how many photos the next scan re-analyses because other model versions made them,
    and your Instagram profile and personal ranking, once imported.
    """
    from photobatch.models.stack import model_set

    current = model_set(obj.config, obj.config.device).models
    with obj.index(create=False) as index:
        counts = index.counts()
        last = index.last_scan()
        models = index.models_in_use()
        stale = len(index.stale_analyses(current))
        note = f" ({stale} photos from other versions: the next scan re-analyses them)"
        lines = [
            f"index:     {obj.config.index} (schema {index.schema_version})",
            "photos:    "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "error", "missing")),
            f"analysed:  {counts['analyses']} distinct photos",
            f"models:    {', '.join(models) if models else 'none yet'}",
            f"current:   {current}{note if stale else ''}",
        ]
        if last:
            summary = json.loads(last["summary"])
            lines.append(
                f"last scan: {last['finished_at']} of {few(json.loads(last['roots']))}: "
                f"{summary['found']} found, {summary['analyzed']} analysed, "
                f"{summary['errors'] + summary.get('still_unreadable', 0)} unreadable, "
                f"{summary['missing']} missing"
            )
        else:
            lines.append("last scan: never")
        lines.extend(personal_status(index, obj.config.personalizer_path))
    click.echo("\n".join(lines))


def few(paths: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``paths``, and how many more: a status line stays one line."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def personal_status(index: Index, head: Path) -> list[str]:
    """The profile and personal-head lines of ``status`` (torch-free unless a head exists)."""
    from photobatch.instagram.profile import user_profile

    profile = user_profile(index, top_d=12)
    if not profile:
        return [
            "profile:   no Instagram posts imported: hashtags are not personalized "
            "(run 'photobatch import-instagram EXPORT', then 'photobatch train personalizer')"
        ]
    from photobatch.models.personalizer import MIN_TAGGED_POSTS, personalizer_status

    state = personalizer_status(index, head)
    if state.trained is not None:
        line = f"trained ({state.trained})"
    elif state.tagged < MIN_TAGGED_POSTS:
        line = (
            f"{state.tagged} imported posts with hashtags: hashtags are not personalized "
            f"(learning your habits takes at least {MIN_TAGGED_POSTS})"
        )
    else:
        line = (
            f"{state.posts} imported posts, not trained yet: hashtags are not personalized "
            "(run 'photobatch train personalizer')"
        )
    return [
        f"profile:   {state.posts} posts; " + ", ".join(t for t, _ in profile),
        f"personalizer: {line}",
    ]


@cli.command()
@click.argument("photo", type=click.Path(path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--attention",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the caption word by word, each word over the part of the photo the model "
    "looked at, into this PNG file.",
)
@click.option(
    "--recent",
    "-n",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="Without PHOTO: how many of the photos most recently added to list.",
)
@pass_context
def show(
    obj: Context, photo: Path | None, as_json: bool, attention: Path | None, recent: int
) -> None:
    """Everything the index knows about one photo; without PHOTO, the photos most recently
    added, each with its caption."""
    if photo is None:
        if attention is not None:
            raise UserError("show --attention draws one photo: name it (photobatch show PHOTO)")
        show_recent(obj, recent, as_json)
        return
    with obj.index(create=False) as index:
        record = index.record(photo.expanduser().absolute())
        if record is None:
            raise UserError(f"{photo}: not in the index {obj.config.index} (scan it first)")
        if attention is not None:
            from photobatch.models.attention import is_attention_figure

            figure = check_output(attention, index, obj.config.sidecars, ours=is_attention_figure)
    if attention is not None:
        draw_attention(obj, record.path, attention, figure)
    info: dict[str, Any] = {
        "path": str(record.path),
        "status": record.status,
        "error": record.error,
        "sha256": record.sha256,
        **asdict(record.metadata),
    }
    if record.analysis is not None:
        a = record.analysis
        info.update(
            caption=a.caption,
            caption_confidence=a.caption_confidence,
            caption_source=a.caption_source,
            hashtags=" ".join(f"#{t}" for t in a.hashtags),
            hashtag_scores=a.hashtag_scores or None,
            objects=a.objects or None,
            labels="; ".join(a.labels),
            post_text=a.post_text,
            models=a.models,
            plugins=a.plugins,
        )
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    if info.get("hashtag_scores"):
        info["hashtag_scores"] = "  ".join(f"#{t} {s:.2f}" for t, s in a.hashtag_scores.items())
    if info.get("objects"):
        info["objects"] = "  ".join(f"{name} {p:.2f}" for name, p in a.objects.items())
    width = max(len(k) for k in info)
    for key, value in info.items():
        if value not in (None, ""):
            click.echo(f"{key + ':':<{width + 1}} {value}")


def draw_attention(obj: Context, photo: Path, attention: Path, figure: Path) -> None:
    """``show --attention``: the figure of ``photo`` into ``figure`` (``attention`` checked)."""
    from photobatch.library.imaging import pillow_warnings
    from photobatch.models.attention import explain_photo

    figure.parent.mkdir(parents=True, exist_ok=True)
    with (
        output_file(attention, figure, "the attention figure") as out,
        pillow_warnings() as noted,
    ):
        config = obj.config
        explain_photo(photo, out, config.captioner, config.device, config.grounding.model)
    for note in noted:
        warn(f"photobatch: {photo}: {note}")
    warn(f"attention figure: {attention}")


def show_recent(obj: Context, limit: int, as_json: bool) -> None:
    """``show`` without a photo: the ``limit`` photos most recently added, with their captions
    (or why they could not be read)."""
    with obj.index(create=False) as index:
        records = index.recent(limit)
        total = sum(n for status, n in index.counts().items() if status in ("ok", "error"))
    if as_json:
        rows = [
            {
                "path": str(r.path),
                "status": r.status,
                "error": r.error,
                "taken_at": r.metadata.taken_at,
                "caption": r.analysis.caption if r.analysis else None,
            }
            for r in records
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("no photos in the index yet: photobatch scan PATH adds them")
        return
    click.echo(
        f"the {len(records)} most recently added of {total} photos "
        "(photobatch show PHOTO for all about one, --recent N for more):"
    )
    for r in records:
        said = r.analysis.caption if r.analysis and r.analysis.caption else None
        if r.status == "error":
            said = f"(unreadable: {r.error})"
        click.echo(f"{r.path}  {said or '(no caption)'}")


@cli.command()
@click.argument("query")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Most results to print.",
)
@pass_context
def search(obj: Context, query: str, limit: int) -> None:
    """Find photos by what they show: their caption, hashtags and grounded objects.

    Prints one photo a line, surest first: its path, how sure photobatch is that it shows what
    was searched (0-1), and its caption, separated by tabs. A multi-word name is one word ('dog'
    does not find a hot dog); a query with quotes, *, or AND/OR/NOT is SQLite FTS5 syntax.
    """
    with obj.index(create=False) as index:
        hits = index.search(query, limit)
        if not hits:
            photos = index.analysed_photos()
            if not photos:
                raise UserError(
                    f"{obj.config.index}: no analysed photos to search yet: run "
                    "'photobatch scan FOLDER' first"
                )
            raise UserError(f"no photo matches {query!r} (searched {photos} analysed photos)")
    for hit in hits:
        click.echo(f"{hit.path}\t{hit.relevance:.2f}\t{hit.caption or ''}")
