"""The index's schema: its tables, the migrations that build them, and how values are stored.

The schema version is SQLite's ``user_version``: migration N brings an index from version N to
N + 1, so an index of any earlier photobatch upgrades itself step by step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from photobatch.core.objects import search_terms
from photobatch.core.records import PhotoMetadata, media_name, post_identity

METADATA_COLUMNS = [f.name for f in fields(PhotoMetadata)]


EXPORT_COLUMNS = {
    "photos": [
        "path",
        "sha256",
        "taken_at",
        "camera_make",
        "camera_model",
        "lens",
        "lat",
        "lon",
        "width",
        "height",
        "caption",
        "caption_confidence",
        "caption_source",
        "hashtags",
        "hashtag_scores",
        "labels",
        "post_text",
        "status",
        "error",
        "warning",
        "review",
        "model_caption",
        "model_hashtags",
    ],
    "posts": ["id", "taken_at", "caption", "hashtags", "media"],
}


def db_path(path: str | Path) -> str | bytes:
    """A path as the index stores it: text, or the file name's raw bytes (a BLOB) when it is not
    UTF-8. SQLite text must be UTF-8, and a surrogate-escaped name would not round-trip."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def fs_path(value: str | bytes) -> str:
    """Inverse of ``db_path``: the path as Python's os functions spell it."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def db_text(text: str | None) -> str | None:
    """A message for the index; a non-UTF-8 file name in it is shown with \\x escapes."""
    if text is None:
        return None
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _create_v1(db: sqlite_utils.Database) -> None:
    """The photos found, the models' results per content (with full-text search), the scans."""
    db["photos"].create(
        {
            "path": str,
            "sha256": str,
            "size": int,
            "mtime_ns": int,
            "status": str,
            "error": str,
            **{c: str for c in METADATA_COLUMNS},
            "lat": float,
            "lon": float,
            "orientation": int,
            "width": int,
            "height": int,
            "first_seen": str,
            "last_seen": str,
        },
        pk="path",
    )
    db["photos"].create_index(["sha256"])
    db["photos"].create_index(["status"])
    db["analyses"].create(
        {
            "sha256": str,
            "labels": str,
            "caption": str,
            "hashtags": str,
            "post_text": str,
            "embedding": bytes,
            "models": str,
            "analyzed_at": str,
        },
        pk="sha256",
    )
    db["analyses"].enable_fts(["caption", "hashtags", "labels"], create_triggers=True)
    db["scans"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "roots": str,
            "summary": str,
        },
        pk="id",
    )


def _create_v2_posts(db: sqlite_utils.Database) -> None:
    """The user's own past posts (Instagram import): what personalises their hashtags."""
    db["posts"].create(
        {"id": str, "taken_at": str, "caption": str, "hashtags": str, "imported_at": str},
        pk="id",
    )
    db["post_media"].create(
        {
            "post_id": str,
            "position": int,
            "kind": str,  # "photo" | "video"; videos are recorded but neither copied nor encoded
            "uri": str,  # where the export had it
            "path": str,  # the copy in the index's personal dir (photos only)
            "sha256": str,
            "embedding": bytes,  # pooled encoder vector, float16 little-endian
        },
        pk=("post_id", "position"),
        foreign_keys=[("post_id", "posts", "id")],
    )
    db["post_media"].create_index(["sha256"])


def _add_v3_candidates(db: sqlite_utils.Database) -> None:
    """Keep the non-personalized hashtags beside the final ones.

    A newly trained personal head can then re-rank every photo already analysed without running
    the image models again; ``personalized_by`` names the head that ranked ``hashtags``.
    """
    db["analyses"].add_column("candidates", str)
    db["analyses"].add_column("personalized_by", str)
    db.execute("UPDATE analyses SET candidates = hashtags")


def _add_v4_confidence(db: sqlite_utils.Database) -> None:
    """How sure the caption and each hashtag are, and where the caption came from (grounding).

    Older analyses keep NULL: unknown, so sidecars keep writing their caption. The scores are
    JSON objects ``{tag: score}`` in the order of their tags.
    """
    db["analyses"].add_column("caption_confidence", float)
    db["analyses"].add_column("caption_source", str)
    db["analyses"].add_column("hashtag_scores", str)
    db["analyses"].add_column("candidate_scores", str)


def _add_reviews(db: sqlite_utils.Database) -> None:
    """The user's review of each content (``photobatch review``), keyed by sha256 as
    ``analyses`` is, in a table of its own that no scan writes: approvals, rejections, the
    user's caption and post draft, added and removed hashtags, and what was approved."""
    db["reviews"].create(
        {
            "sha256": str,
            "verdict": str,  # approved | rejected | NULL
            "caption": str,
            "post_text": str,
            "added": str,  # JSON list of tags
            "removed": str,  # JSON list of tags
            "approved_caption": str,
            "approved_hashtags": str,  # JSON list of tags
            "approved_models": str,
            "updated_at": str,
        },
        pk="sha256",
    )


def _key_posts_by_their_own_fields(db: sqlite_utils.Database) -> None:
    """A post's id is its own (``post_identity``), the same with or without its media;
    the scan's hashtags of each imported photo are kept beside it.

    Earlier ids hashed the post's media files when the export had them and its time and caption
    when it did not, so importing an export again with its photos added every post a second
    time. Rows that are one post under the new id are merged: its caption, hashtags and media
    from the copy with the most encoded photos (the later import on a tie), a photo missing there
    taken from another copy's item of the same file name, and the first ``imported_at``.
    """
    db["post_media"].add_column("candidates", str)
    db["post_media"].add_column("models", str)
    media: dict[str, list[dict[str, Any]]] = {}
    for row in db.query("SELECT * FROM post_media ORDER BY post_id, position"):
        media.setdefault(row["post_id"], []).append(row)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in db.query("SELECT * FROM posts ORDER BY imported_at, id"):
        uris = [m["uri"] for m in media.get(row["id"], [])]
        groups.setdefault(post_identity(row["taken_at"], row["caption"], uris), []).append(row)

    def encoded(row: dict[str, Any]) -> int:
        return sum(m["embedding"] is not None for m in media.get(row["id"], []))

    posts, items = [], []
    for post_id, copies in groups.items():
        best = max(reversed(copies), key=encoded)  # the later import on a tie
        files = {
            media_name(m["uri"]): m
            for row in copies
            for m in media.get(row["id"], [])
            if m["sha256"]
        }
        for position, item in enumerate(media.get(best["id"], [])):
            if not item["sha256"]:
                item = {**item, **files.get(media_name(item["uri"]), {})}
            items.append({**item, "post_id": post_id, "position": position})
        first = min((r["imported_at"] for r in copies if r["imported_at"]), default=None)
        posts.append({**best, "id": post_id, "imported_at": first})
    db.execute("DELETE FROM post_media")
    db.execute("DELETE FROM posts")
    if posts:
        db["posts"].insert_all(posts)
    if items:
        db["post_media"].insert_all(items)


def _add_plugins(db: sqlite_utils.Database) -> None:
    """Which after-analysis plugins ran on each analysis (``plugins``, compared like
    ``models``: a change applies them again) and what they changed (``plugin_changes``, JSON:
    who added which hashtag and label, and the models' own candidates and labels)."""
    db["analyses"].add_column("plugins", str)
    db["analyses"].add_column("plugin_changes", str)


def _add_search_objects(db: sqlite_utils.Database) -> None:
    """Search what grounding supports: the objects a photo shows, and one column of
    search terms in which a multi-word name is one term ('hot dog' is no dog).

    ``objects`` is a JSON object ``{class: probability}``; ``terms`` holds the caption's terms,
    singular, and the objects' (``photobatch.core.objects.search_terms``). The full-text index
    covers ``terms`` and ``hashtags`` instead of the caption and the ImageNet labels, which
    named what a photo might show ('hotdog, hot dog' matched 'dog'). Older analyses get the
    terms of their caption; the next scan, which analyses them again with the new grounding,
    adds their objects.
    """
    db["analyses"].add_column("objects", str)
    db["analyses"].add_column("terms", str)
    rows = db.execute("SELECT rowid, caption FROM analyses WHERE caption IS NOT NULL").fetchall()
    for rowid, caption in rows:
        terms = " ".join(search_terms(caption))
        db.execute("UPDATE analyses SET terms = ? WHERE rowid = ?", [terms, rowid])
    db["analyses"].disable_fts()
    db["analyses"].enable_fts(["terms", "hashtags"], create_triggers=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _create_v1,
    _create_v2_posts,
    _add_v3_candidates,
    _add_v4_confidence,
    _add_reviews,
    _key_posts_by_their_own_fields,
    _add_plugins,
    _add_search_objects,
]


SCHEMA_VERSION = len(MIGRATIONS)


def in_chunks(
    db: sqlite_utils.Database, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run ``sql``, whose ``IN ({marks})`` takes ``values``, 500 values at a time (SQLite caps
    the parameters of one statement) after any leading ``params``; every chunk's rows."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), 500):
        chunk = list(values[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows += db.execute(sql.format(marks=marks), [*params, *chunk]).fetchall()
    return rows
