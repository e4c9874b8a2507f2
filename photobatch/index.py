"""The local SQLite index: one row per photo path, model results keyed by content.

Results live in ``analyses`` keyed by sha256, so a photo that is moved, renamed or copied reuses
them; ``photos`` keeps one row per path with its EXIF and status. The schema carries a version and
upgrades itself through ``MIGRATIONS``; the database runs in WAL mode so ``status``/``export`` can
read while a scan writes, and every scan batch is one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from photobatch.records import Analysis, PhotoMetadata, PhotoRecord

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
        "hashtags",
        "labels",
        "post_text",
        "status",
        "error",
        "warning",
    ],
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _create_v1(db: sqlite_utils.Database) -> None:
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_create_v1]
SCHEMA_VERSION = len(MIGRATIONS)


class IndexOpenError(Exception):
    """The index file cannot be used (newer schema, not a photobatch index, unreadable)."""


class Index:
    """A photobatch index on disk; open it with ``Index(path)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite_utils.Database(path)
            self.db.execute("PRAGMA busy_timeout = 10000")
            self.db.enable_wal()
            self._migrate()
        except Exception as exc:  # sqlite3.DatabaseError and friends
            if isinstance(exc, IndexOpenError):
                raise
            raise IndexOpenError(f"{path}: cannot open the index: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise IndexOpenError(
                f"{self.path}: index schema version {version} is newer than this photobatch "
                f"understands ({SCHEMA_VERSION}); upgrade photobatch"
            )
        for number in range(version, SCHEMA_VERSION):
            with self.db.atomic():
                MIGRATIONS[number](self.db)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- reads ----------------------------------------------------------------------------------

    def known_files(self) -> dict[str, tuple[int, int, str, str | None]]:
        """path -> (size, mtime_ns, status, sha256) for every indexed path: the rescan gate."""
        rows = self.db.execute("SELECT path, size, mtime_ns, status, sha256 FROM photos")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def analyzed(self, hashes: Iterable[str]) -> set[str]:
        """Which of these content hashes already have model results."""
        hashes = list(set(hashes))
        found: set[str] = set()
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT sha256 FROM analyses WHERE sha256 IN ({marks})"
            found.update(r[0] for r in self.db.execute(sql, chunk))
        return found

    def record(self, path: Path) -> PhotoRecord | None:
        rows = list(self.db.query("SELECT * FROM photos WHERE path = ?", [str(path)]))
        if not rows:
            return None
        return self._to_record(rows[0])

    def _to_record(self, row: dict[str, Any]) -> PhotoRecord:
        metadata = PhotoMetadata(**{c: row[c] for c in METADATA_COLUMNS})
        analysis = None
        if row["sha256"]:
            analysis = self.analysis(row["sha256"])
        return PhotoRecord(
            path=Path(row["path"]),
            sha256=row["sha256"],
            status=row["status"],
            error=row["error"],
            metadata=metadata,
            analysis=analysis,
        )

    def analysis(self, sha256: str) -> Analysis | None:
        rows = list(self.db.query("SELECT * FROM analyses WHERE sha256 = ?", [sha256]))
        if not rows:
            return None
        row = rows[0]
        return Analysis(
            sha256=row["sha256"],
            labels=json.loads(row["labels"] or "[]"),
            caption=row["caption"],
            hashtags=json.loads(row["hashtags"] or "[]"),
            post_text=row["post_text"],
            embedding=row["embedding"],
            models=row["models"],
        )

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*) FROM photos GROUP BY status")
        counts = {status: n for status, n in rows}
        counts["analyses"] = self.db["analyses"].count
        return counts

    def last_scan(self) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM scans ORDER BY id DESC LIMIT 1"))
        return rows[0] if rows else None

    def models_in_use(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT models FROM analyses WHERE models IS NOT NULL")
        return sorted(r[0] for r in rows)

    def search(self, query: str, limit: int = 20) -> list[str]:
        """Paths of photos whose caption, hashtags or labels match a full-text query."""
        sql = (
            "SELECT photos.path FROM analyses_fts JOIN analyses ON analyses.rowid = "
            "analyses_fts.rowid JOIN photos ON photos.sha256 = analyses.sha256 "
            "WHERE analyses_fts MATCH ? AND photos.status = 'ok' ORDER BY rank LIMIT ?"
        )
        return [r[0] for r in self.db.execute(sql, [query, limit])]

    def export_rows(self, table: str = "photos") -> Iterator[dict[str, Any]]:
        """Rows for ``photobatch export``: one per image file found, failures included."""
        if table != "photos":
            raise ValueError(f"unknown table {table!r}")
        sql = (
            "SELECT photos.*, analyses.caption, analyses.hashtags AS tags, analyses.labels "
            "AS label_list, analyses.post_text FROM photos LEFT JOIN analyses "
            "ON analyses.sha256 = photos.sha256 ORDER BY photos.path"
        )
        for row in self.db.query(sql):
            tags = json.loads(row.pop("tags") or "[]")
            labels = json.loads(row.pop("label_list") or "[]")
            row["hashtags"] = " ".join(f"#{t}" for t in tags)
            row["labels"] = "; ".join(labels)
            yield {c: row.get(c) for c in EXPORT_COLUMNS["photos"]}

    # -- writes ---------------------------------------------------------------------------------

    def write_batch(
        self,
        photos: list[tuple[Any, PhotoMetadata | None, str | None, str, str | None]],
        analyses: list[Analysis],
    ) -> None:
        """Store one scan batch in a single transaction.

        ``photos`` items are (FoundFile, metadata, sha256, status, error).
        """
        stamp = now()
        photo_rows = []
        for found, metadata, sha256, status, error in photos:
            row: dict[str, Any] = {
                "path": str(found.path),
                "sha256": sha256,
                "size": found.size,
                "mtime_ns": found.mtime_ns,
                "status": status,
                "error": error,
                "last_seen": stamp,
                **asdict(metadata or PhotoMetadata()),
            }
            photo_rows.append(row)
        analysis_rows = [
            {
                "sha256": a.sha256,
                "labels": json.dumps(a.labels, ensure_ascii=False),
                "caption": a.caption,
                "hashtags": json.dumps(a.hashtags, ensure_ascii=False),
                "post_text": a.post_text,
                "embedding": a.embedding,
                "models": a.models,
                "analyzed_at": stamp,
            }
            for a in analyses
        ]
        with self.db.atomic():
            if analysis_rows:
                self.db["analyses"].upsert_all(analysis_rows, pk="sha256")
            if photo_rows:
                self.db["photos"].upsert_all(photo_rows, pk="path")
                self.db.execute(
                    "UPDATE photos SET first_seen = ? WHERE first_seen IS NULL", [stamp]
                )

    def mark_missing(self, paths: Iterable[str]) -> int:
        """Flag paths that are no longer on disk; their rows and results are kept."""
        paths = list(paths)
        with self.db.atomic():
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(
                    f"UPDATE photos SET status = 'missing' WHERE path IN ({marks})", chunk
                )
        return len(paths)

    def log_scan(self, started_at: str, roots: list[Path], summary: dict[str, int]) -> None:
        with self.db.atomic():
            self.db["scans"].insert(
                {
                    "started_at": started_at,
                    "finished_at": now(),
                    "roots": json.dumps([str(r) for r in roots]),
                    "summary": json.dumps(summary),
                }
            )
