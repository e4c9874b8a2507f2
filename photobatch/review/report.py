"""``photobatch report --html``: a contact sheet of the index in one self-contained HTML file.

For a cron job's output or a folder to hand to someone: every card of the review page, static,
with its thumbnail embedded as a data URI, so the file opens anywhere and loads nothing.
"""

from __future__ import annotations

import base64
from pathlib import Path

from photobatch.core.config import Config
from photobatch.library.imaging import ImageError
from photobatch.library.index import Index
from photobatch.library.reviews import CardQuery
from photobatch.library.sidecars import write_atomic
from photobatch.library.thumbnails import Thumbnails
from photobatch.review.cards import CardView
from photobatch.review.page import SHOW_LABELS, render_sheet


def contact_sheet(config: Config, index: Index, query: CardQuery) -> tuple[str, int, list[str]]:
    """The sheet's HTML, how many photos it shows, and the photos it could not draw."""
    thumbnails = Thumbnails(max_bytes=config.review.thumbnail_cache_mb * 2**20)
    _, cards = index.cards(query)
    views, problems = [], []
    for card in cards:
        try:
            data = thumbnails.get(card.sha256, card.record.path)
        except ImageError as exc:
            problems.append(str(exc))
            continue
        uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        views.append((CardView.of(card), uri))
    where = ", ".join(str(r) for r in query.roots) or "the whole index"
    summary = f"{len(views)} photos: {SHOW_LABELS[query.show].lower()} in {where}"
    if query.since:
        summary += f", found since {query.since}"
    return render_sheet(views, "photobatch contact sheet", summary), len(views), problems


def write_sheet(html: str, out: Path) -> None:
    """Write the sheet in one rename, so a reader never opens half of it."""
    write_atomic(out, html.encode("utf-8"))
