"""The user's own past posts in the index, imported from an Instagram export.

A part of ``Index`` (its ``posts`` and ``post_media`` tables), kept in a module of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photobatch.core.records import Post, PostMedia
from photobatch.core.text import format_hashtags
from photobatch.library.schema import in_chunks, now
from photobatch.library.sqlite_errors import every_public_method

if TYPE_CHECKING:
    import sqlite_utils


@every_public_method
class PostTables:
    """Reads and writes of imported posts; mixed into ``Index``, which supplies the database."""

    path: Path
    db: sqlite_utils.Database

    def write_posts(self, posts: list[Post]) -> None:
        """Store imported posts in one transaction; a post seen before is replaced in place.

        Replacing (rather than skipping) lets a newer export correct an older one, while the
        first ``imported_at`` is kept so a re-import of the same export changes nothing.
        """
        stamp = now()
        post_rows = [
            {
                "id": p.id,
                "taken_at": p.taken_at,
                "caption": p.caption,
                "hashtags": json.dumps(p.hashtags, ensure_ascii=False),
            }
            for p in posts
        ]
        media_rows = [
            {
                "post_id": p.id,
                "position": position,
                "kind": m.kind,
                "uri": m.uri,
                "path": str(m.path) if m.path else None,
                "sha256": m.sha256,
                "embedding": m.embedding,
                "candidates": json.dumps(m.candidates, ensure_ascii=False)
                if m.candidates
                else None,
                "models": m.models,
            }
            for p in posts
            for position, m in enumerate(p.media)
        ]
        with self.db.atomic():
            ids = [p.id for p in posts]
            in_chunks(self.db, "DELETE FROM post_media WHERE post_id IN ({marks})", ids)
            if post_rows:
                self.db["posts"].upsert_all(post_rows, pk="id")
                self.db.execute(
                    "UPDATE posts SET imported_at = ? WHERE imported_at IS NULL", [stamp]
                )
            if media_rows:
                self.db["post_media"].insert_all(media_rows, pk=("post_id", "position"))

    def posts(self) -> list[Post]:
        """Every imported post, oldest first, with its media in the post's order."""
        media: dict[str, list[PostMedia]] = {}
        for row in self.db.query("SELECT * FROM post_media ORDER BY post_id, position"):
            media.setdefault(row["post_id"], []).append(
                PostMedia(
                    kind=row["kind"],
                    uri=row["uri"],
                    path=Path(row["path"]) if row["path"] else None,
                    sha256=row["sha256"],
                    embedding=row["embedding"],
                    candidates=json.loads(row["candidates"] or "[]"),
                    models=row["models"],
                )
            )
        return [
            Post(
                id=row["id"],
                taken_at=row["taken_at"],
                caption=row["caption"],
                hashtags=json.loads(row["hashtags"] or "[]"),
                media=media.get(row["id"], []),
            )
            for row in self.db.query("SELECT * FROM posts ORDER BY taken_at, id")
        ]

    def post_media_files(self) -> set[tuple[Path, str | None]]:
        """(path, sha256) of every imported photo's copy."""
        rows = self.db.execute(
            "SELECT DISTINCT path, sha256 FROM post_media WHERE path IS NOT NULL"
        )
        return {(Path(path), sha256) for path, sha256 in rows}

    def repoint_post_media(self, moves: dict[Path, Path]) -> None:
        """Re-point imported photos' rows to the files' new places, in one transaction."""
        with self.db.atomic():
            for old, new in moves.items():
                self.db.execute(
                    "UPDATE post_media SET path = ? WHERE path = ?", [str(new), str(old)]
                )

    def post_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM posts")}

    def known_photo_results(
        self, hashes: Iterable[str], models: str
    ) -> dict[str, tuple[bytes, list[str]]]:
        """sha256 -> (embedding, the scan's hashtags) for contents ``models`` already analysed,
        as a scanned photo or an imported one: a re-import runs no model for them."""
        hashes = list(set(hashes))
        found: dict[str, tuple[bytes, list[str]]] = {}
        for table in ("analyses", "post_media"):
            sql = f"SELECT sha256, embedding, candidates FROM {table} "
            sql += "WHERE models = ? AND embedding IS NOT NULL AND sha256 IN ({marks})"
            rows = in_chunks(self.db, sql, hashes, [models])
            found.update({r[0]: (r[1], json.loads(r[2] or "[]")) for r in rows})
        return found

    def _post_export_rows(self) -> Iterator[dict[str, Any]]:
        for post in self.posts():
            yield {
                "id": post.id,
                "taken_at": post.taken_at,
                "caption": post.caption,
                "hashtags": format_hashtags(post.hashtags),
                "media": ";".join(str(m.path) for m in post.media if m.path),
            }
