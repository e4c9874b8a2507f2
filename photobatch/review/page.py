"""The review page and the contact sheet: a header, the filters, a grid of cards, the pager.

Both are whole HTML documents built here from ``cards.render_card``. The page loads its style and
script from the server itself (``static/``); the sheet is one self-contained file: the same style
inline, thumbnails as data URIs, and a Content-Security-Policy that lets it load nothing at all.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib.resources import files
from urllib.parse import urlencode

from photobatch.library.reviews import SHOWS, Card, CardQuery
from photobatch.review.cards import CardView, render_card

SHOW_LABELS = {
    "all": "All photos",
    "needs-review": "Needs review (caption below the sidecar threshold)",
    "unreviewed": "Not decided",
    "approved": "Approved",
    "rejected": "Rejected",
}
KEYS = [
    ("j / k, arrows", "next / previous photo"),
    ("a", "approve and go on"),
    ("r", "reject and go on"),
    ("u", "undecide"),
    ("e", "edit the caption (Enter saves, Esc cancels)"),
    ("t", "add hashtags"),
    ("d", "edit the post draft"),
    ("c", "copy the post"),
    ("m", "where the model looked"),
    ("n / p", "next / previous page"),
    ("/", "search"),
]
SHEET_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def static_text(name: str) -> str:
    """One of the page's own assets (``review.css``, ``review.js``), shipped in the package."""
    return (files("photobatch.review") / "static" / name).read_text(encoding="utf-8")


def render_page(
    cards: list[Card],
    total: int,
    query: CardQuery,
    folders: list[str],
    *,
    csrf: str,
) -> str:
    """The review page for one page of ``query``'s cards."""
    grid = "".join(
        render_card(CardView.of(card), f"/thumb/{card.sha256}", interactive=True) for card in cards
    )
    limit = query.limit or max(total, 1)
    page = query.offset // limit + 1
    pages = max(1, -(-total // limit))
    first = query.offset + 1 if cards else 0
    links = []
    if page > 1:
        links.append(f'<a id="prev" rel="prev" href="{_link(query, page - 1)}">← previous</a>')
    if page < pages:
        links.append(f'<a id="next" rel="next" href="{_link(query, page + 1)}">next →</a>')
    pager = (
        f'<nav class="pager"><span>{first}&ndash;{query.offset + len(cards)} of {total:,} '
        f"(page {page} of {pages})</span>{' '.join(links)}</nav>"
    )
    keys = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in KEYS)
    body = (
        f"<header><h1>photobatch review</h1>{_filters(query, folders)}"
        f'<form id="approve-all"><label>Approve all shown with a caption at least '
        f'<input type="number" name="min" min="0" max="1" step="0.05" '
        f'value="{query.threshold:.2f}"> sure</label> <button type="submit">Approve all '
        f'shown</button></form>{pager}<p id="status" role="status"></p></header>'
        f'<main class="grid">{grid or "<p>No photos match.</p>"}</main>'
        f"<footer>{pager}<dl class=keys>{keys}</dl></footer>"
    )
    head = (
        f'<meta name="csrf-token" content="{escape(csrf)}">'
        '<link rel="stylesheet" href="/static/review.css">'
        '<script src="/static/review.js" defer></script>'
    )
    return _document("photobatch review", head, body)


def render_sheet(views: list[tuple[CardView, str]], title: str, summary: str) -> str:
    """The contact sheet: (card, thumbnail data URI) pairs, static and self-contained."""
    grid = "".join(render_card(view, thumb, interactive=False) for view, thumb in views)
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{SHEET_CSP}">'
        f"<style>{static_text('review.css')}</style>"
    )
    body = (
        f"<header><h1>{escape(title)}</h1><p>{escape(summary)} · made {stamp} by "
        f'photobatch report</p></header><main class="grid sheet">{grid}</main>'
    )
    return _document(title, head, body)


def _document(title: str, head: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title>{head}'
        f"</head><body>{body}</body></html>"
    )


def _filters(query: CardQuery, folders: list[str]) -> str:
    shows = "".join(
        f'<option value="{s}"{" selected" if s == query.show else ""}>{SHOW_LABELS[s]}</option>'
        for s in SHOWS
    )
    folder_options = '<option value="">every folder</option>' + "".join(
        f'<option value="{escape(f)}"{" selected" if f == query.folder else ""}>'
        f"{escape(f)}</option>"
        for f in folders
    )
    return (
        '<form id="filters" method="get" action="/">'
        f'<select name="show" aria-label="show">{shows}</select>'
        f'<select name="folder" aria-label="folder">{folder_options}</select>'
        f'<label>taken from <input type="date" name="from" value="{escape(query.date_from or "")}">'
        f'</label><label>to <input type="date" name="to" value="{escape(query.date_to or "")}">'
        f'</label><input type="search" name="q" id="search" placeholder="search (/)" '
        f'value="{escape(query.search or "")}" aria-label="search">'
        '<button type="submit">Show</button></form>'
    )


def _link(query: CardQuery, page: int) -> str:
    """The page URL of ``query``'s ``page``-th page (filters kept)."""
    params = {
        "show": query.show,
        "folder": query.folder or "",
        "from": query.date_from or "",
        "to": query.date_to or "",
        "q": query.search or "",
        "page": str(page),
    }
    return escape("/?" + urlencode({k: v for k, v in params.items() if v and v != "all"}))
