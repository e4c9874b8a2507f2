"""The user's reviews in the index (``photobatch review``): approvals, rejections and edits.

A part of ``Index`` (its ``reviews`` table), kept in a module of its own. A review is keyed by the
content's sha256, as the models' results are: a moved or renamed photo keeps it, copies of one
photo share it, and a photo edited in place (same path, new content) takes its review along to
its new content. No scan writes here except that carry-over, which never replaces a review.

The edits are plain functions of (review, analysis) so the rules read in one place: approving
freezes the caption and hashtags as the user saw them; an edit of an approved photo edits what
was approved; the models' later output is only ever a suggestion beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photobatch.core.config import SidecarConfig
from photobatch.core.records import Analysis, PhotoMetadata, PhotoRecord, Review
from photobatch.library.schema import METADATA_COLUMNS, db_path, fs_path, in_chunks, now
from photobatch.library.sqlite_errors import every_public_method

if TYPE_CHECKING:
    import sqlite_utils

SHOWS = ("all", "needs-review", "unreviewed", "approved", "rejected")
SEARCH_LIMIT = 100_000  # search hits a page filters by: every photo of any real library


@dataclass(frozen=True)
class CardQuery:
    """Which photos a review page or contact sheet shows, and which page of them."""

    roots: tuple[Path, ...] = ()  # only photos below these folders (none: the whole index)
    show: str = "all"  # one of SHOWS
    folder: str | None = None  # only photos below this folder
    date_from: str | None = None  # YYYY-MM-DD, taken on or after
    date_to: str | None = None  # YYYY-MM-DD, taken on or before
    search: str | None = None  # the query of ``photobatch search``
    since: str | None = None  # ISO date: first seen by a scan on or after
    # needs review: a caption confidence below this (the sidecars' threshold)
    threshold: float = SidecarConfig().min_caption_confidence
    offset: int = 0
    limit: int | None = 48


@dataclass
class Card:
    """One content on a review page: its record (first path) and every path it has."""

    record: PhotoRecord
    copies: list[Path] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        assert self.record.sha256 is not None
        return self.record.sha256


# -- the rules of an edit ------------------------------------------------------------------------


def shown(review: Review, analysis: Analysis) -> Analysis:
    """The analysis as the user sees it with ``review`` applied."""
    record = PhotoRecord(Path(), review.sha256, "ok", analysis=analysis, review=review)
    reviewed = record.reviewed().analysis
    assert reviewed is not None
    return reviewed


def approve(review: Review, analysis: Analysis) -> None:
    """Approve what is shown now: it stays, whatever later models say."""
    if review.verdict == "approved":
        return
    now_shown = shown(replace(review, verdict=None), analysis)
    review.verdict = "approved"
    review.approved_caption = now_shown.caption
    review.approved_hashtags = list(now_shown.hashtags)
    review.approved_models = analysis.models


def reject(review: Review, analysis: Analysis) -> None:
    """The models' output is wrong for this photo: none of it is written."""
    clear(review, analysis)
    review.verdict = "rejected"


def clear(review: Review, analysis: Analysis) -> None:
    """No verdict: the models' output, with the user's edits, is shown and written again."""
    review.verdict = None
    review.approved_caption, review.approved_hashtags, review.approved_models = None, [], None


def set_caption(review: Review, analysis: Analysis, text: str) -> None:
    """The user's caption ("" for none); the model's own words make it the model's again."""
    text = " ".join(text.split())
    review.caption = None if text == (analysis.caption or "") else text
    if review.verdict == "approved":
        review.approved_caption = text


def use_suggestion(review: Review, analysis: Analysis) -> None:
    """Take the models' current caption, in place of the approved or written one."""
    review.caption = None
    if review.verdict == "approved":
        review.approved_caption = analysis.caption
        review.approved_models = analysis.models


def set_post_text(review: Review, analysis: Analysis, text: str) -> None:
    text = text.strip()
    review.post_text = None if text == (analysis.post_text or "") else text


def add_hashtags(review: Review, analysis: Analysis, tags: Iterable[str]) -> None:
    for tag in tags:
        if tag in review.removed:
            review.removed.remove(tag)
        if tag not in analysis.hashtags and tag not in review.added:
            review.added.append(tag)
        if review.verdict == "approved" and tag not in review.approved_hashtags:
            review.approved_hashtags.append(tag)


def remove_hashtag(review: Review, analysis: Analysis, tag: str) -> None:
    """Drop ``tag``; a model's tag stays removed for every later model too."""
    if tag in review.added:
        review.added.remove(tag)
    elif tag not in review.removed:
        review.removed.append(tag)
    if tag in review.approved_hashtags:
        review.approved_hashtags.remove(tag)


# -- the table -----------------------------------------------------------------------------------


@every_public_method
class ReviewTables:
    """Reads and writes of reviews; mixed into ``Index``, which supplies the database and its
    ``analysis`` and ``search``."""

    path: Path
    db: sqlite_utils.Database
    analysis: Callable[[str], Analysis | None]
    search: Callable[[str, int], list[str]]
    paths_with: Callable[[Iterable[str]], dict[str, list[Path]]]

    def reviews(self, hashes: Iterable[str]) -> dict[str, Review]:
        """The reviews of these contents, by sha256 (contents never reviewed are left out)."""
        sql = "SELECT * FROM reviews WHERE sha256 IN ({marks})"
        cursor_rows = in_chunks(self.db, sql, list(set(hashes)))
        names = [c[1] for c in self.db.execute("PRAGMA table_info(reviews)")]
        return {row[0]: review_from_row(dict(zip(names, row, strict=True))) for row in cursor_rows}

    def review(self, sha256: str) -> Review | None:
        return self.reviews([sha256]).get(sha256)

    def change_review(self, sha256: str, change: Callable[[Review, Analysis], None]) -> Review:
        """Apply ``change`` to the content's review (a new one if it has none) and store it.

        Raises ``KeyError`` for a content without an analysis: there is nothing to review.
        """
        analysis = self.analysis(sha256)
        if analysis is None:
            raise KeyError(sha256)
        review = self.review(sha256) or Review(sha256)
        change(review, analysis)
        review.updated_at = now()
        with self.db.atomic():
            self.db["reviews"].upsert(_to_row(review), pk="sha256")
        return review

    def approve_all(self, hashes: Iterable[str], min_confidence: float) -> list[str]:
        """Approve the contents among ``hashes`` that have no verdict yet and a caption at least
        ``min_confidence`` sure; returns the ones approved."""
        sql = (
            "SELECT analyses.sha256 FROM analyses LEFT JOIN reviews USING (sha256) "
            "WHERE reviews.verdict IS NULL AND analyses.caption_confidence >= ? "
            "AND analyses.sha256 IN ({marks})"
        )
        chosen = [r[0] for r in in_chunks(self.db, sql, list(set(hashes)), [min_confidence])]
        for sha256 in chosen:
            self.change_review(sha256, approve)
        return chosen

    def carry_reviews(self, found: list[tuple[Path, str]]) -> None:
        """Give each photo (path, its sha256 now) edited in place (the index has another sha256
        at that path) the review of its old content, unless the new content has one of its own.
        A scan calls it before writing a batch's sidecars; one query a batch once anything is
        reviewed."""
        rows = [(db_path(path), sha256) for path, sha256 in found]
        if self.db.execute("SELECT 1 FROM reviews LIMIT 1").fetchone() is None:
            return
        sql = "SELECT path, sha256 FROM photos WHERE path IN ({marks})"
        before = dict(in_chunks(self.db, sql, [path for path, _ in rows]))
        columns = [c[1] for c in self.db.execute("PRAGMA table_info(reviews)")][1:]
        names = ", ".join(columns)
        with self.db.atomic():
            for path, sha256 in rows:
                old = before.get(path)
                if old and old != sha256:
                    self.db.execute(
                        f"INSERT OR IGNORE INTO reviews (sha256, {names}) "
                        f"SELECT ?, {names} FROM reviews WHERE sha256 = ?",
                        [sha256, old],
                    )

    # -- what a page shows ------------------------------------------------------------------------

    def cards(self, query: CardQuery) -> tuple[int, list[Card]]:
        """How many contents ``query`` matches, and the page of them it asks for (in path order,
        or best match first when it searches), each with all its present paths."""
        where, params = ["photos.status = 'ok'"], []
        for roots in (query.roots, (Path(query.folder),) if query.folder else ()):
            if roots:
                clauses = [_below_sql(root, params) for root in roots]
                where.append("(" + " OR ".join(clauses) + ")")
        if query.show == "needs-review":
            where.append(
                "reviews.verdict IS NULL AND reviews.caption IS NULL AND "
                "(coalesce(analyses.caption, '') = '' OR analyses.caption_confidence < ?)"
            )
            params.append(query.threshold)
        elif query.show == "unreviewed":
            where.append("reviews.verdict IS NULL")
        elif query.show in ("approved", "rejected"):
            where.append("reviews.verdict = ?")
            params.append(query.show)
        if query.date_from:
            where.append("substr(photos.taken_at, 1, 10) >= ?")
            params.append(query.date_from)
        if query.date_to:
            where.append("substr(photos.taken_at, 1, 10) <= ?")
            params.append(query.date_to)
        if query.since:
            where.append("photos.first_seen >= ?")
            params.append(query.since)
        sql = (
            "SELECT photos.sha256, min(photos.path) AS first FROM photos "
            "JOIN analyses ON analyses.sha256 = photos.sha256 "
            "LEFT JOIN reviews ON reviews.sha256 = photos.sha256 "
            f"WHERE {' AND '.join(where)} GROUP BY photos.sha256 ORDER BY first"
        )
        hashes = [row[0] for row in self.db.execute(sql, params)]
        if query.search:
            matched = set(hashes)
            hits = self.search(query.search, SEARCH_LIMIT)
            ranked = self._hashes_of([hit.path for hit in hits])
            hashes = [h for h in dict.fromkeys(ranked) if h in matched]
        end = None if query.limit is None else query.offset + query.limit
        return len(hashes), self._load_cards(hashes[query.offset : end])

    def cards_of(self, hashes: list[str]) -> list[Card]:
        """The cards of these contents (those still present), in this order."""
        present = self.paths_with(hashes)
        return self._load_cards([h for h in hashes if h in present])

    def folders(self, roots: Iterable[Path] = ()) -> list[str]:
        """Every folder holding a present photo (below ``roots``, if any), sorted."""
        roots = [str(r).rstrip(os.sep) + os.sep for r in roots]
        found = {
            os.path.dirname(fs_path(path))
            for (path,) in self.db.execute("SELECT path FROM photos WHERE status = 'ok'")
        }
        return sorted(
            f for f in found if not roots or any((f + os.sep).startswith(r) for r in roots)
        )

    def _hashes_of(self, paths: list[str]) -> list[str]:
        rows = in_chunks(self.db, "SELECT path, sha256 FROM photos WHERE path IN ({marks})", paths)
        by_path = {fs_path(path): sha256 for path, sha256 in rows}
        return [by_path[p] for p in paths if by_path.get(p)]

    def _load_cards(self, hashes: list[str]) -> list[Card]:
        if not hashes:
            return []
        reviews = self.reviews(hashes)
        sql = "SELECT * FROM photos WHERE status = 'ok' AND sha256 IN ({marks}) ORDER BY path"
        names = [c[1] for c in self.db.execute("PRAGMA table_info(photos)")]
        rows: dict[str, list[dict[str, Any]]] = {}
        for values in in_chunks(self.db, sql, hashes):
            row = dict(zip(names, values, strict=True))
            rows.setdefault(row["sha256"], []).append(row)
        cards = []
        for sha256 in hashes:
            first = rows[sha256][0]
            record = PhotoRecord(
                path=Path(fs_path(first["path"])),
                sha256=sha256,
                status="ok",
                metadata=PhotoMetadata(**{c: first[c] for c in METADATA_COLUMNS}),
                analysis=self.analysis(sha256),
                review=reviews.get(sha256),
            )
            cards.append(Card(record, [Path(fs_path(r["path"])) for r in rows[sha256]]))
        return cards


def _below_sql(root: Path, params: list[Any]) -> str:
    """SQL true for ``photos.path`` at or below ``root`` (text and non-UTF-8 BLOB rows alike)."""
    exact = os.fsencode(str(root).rstrip(os.sep) or os.sep)
    prefix = os.fsencode(str(root).rstrip(os.sep) + os.sep)
    params.extend([exact, len(prefix), prefix])
    return "(CAST(photos.path AS BLOB) = ? OR substr(CAST(photos.path AS BLOB), 1, ?) = ?)"


def review_from_row(row: dict[str, Any]) -> Review:
    return Review(
        sha256=row["sha256"],
        verdict=row["verdict"],
        caption=row["caption"],
        post_text=row["post_text"],
        added=json.loads(row["added"] or "[]"),
        removed=json.loads(row["removed"] or "[]"),
        approved_caption=row["approved_caption"],
        approved_hashtags=json.loads(row["approved_hashtags"] or "[]"),
        approved_models=row["approved_models"],
        updated_at=row["updated_at"],
    )


def _to_row(review: Review) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sha256": review.sha256,
        "verdict": review.verdict,
        "caption": review.caption,
        "post_text": review.post_text,
        "approved_caption": review.approved_caption,
        "approved_models": review.approved_models,
        "updated_at": review.updated_at,
    }
    for name in ("added", "removed", "approved_hashtags"):
        row[name] = json.dumps(getattr(review, name), ensure_ascii=False)
    return row
