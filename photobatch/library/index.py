"""The local SQLite index: one row per photo path, model results keyed by content.

Results live in ``analyses`` keyed by sha256, so a photo that is moved, renamed or copied reuses
them; ``photos`` keeps one row per path with its EXIF and status. The schema carries a version and
upgrades itself through ``MIGRATIONS``; the database runs in WAL mode so ``status``/``export`` can
read while a scan writes, and every scan batch is one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlite_utils

from photobatch.core.records import (
    Analysis,
    IndexedFile,
    PhotoMetadata,
    PhotoRecord,
    PhotoRow,
    PluginChanges,
)
from photobatch.core.text import format_hashtags
from photobatch.library.posts import PostTables
from photobatch.library.reviews import ReviewTables, review_from_row
from photobatch.library.schema import (
    EXPORT_COLUMNS,
    METADATA_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    db_path,
    db_text,
    fs_path,
    in_chunks,
    now,
)
from photobatch.library.search import SearchHit, SearchQueryError, indexed_terms, parse_query
from photobatch.library.sqlite_errors import (
    IndexOpenError,
    every_public_method,
    sqlite_problem,
)

OUR_TABLES = frozenset({"photos", "analyses", "scans"})  # what every schema version has


def _writable_companions(path: Path) -> None:
    """Give SQLite's ``-wal`` and ``-shm`` files the index's permissions back where they lack
    its owner's write permission.

    SQLite creates them with the index file's permissions. Opened while the index was read-only
    (a refused scan, a ``status``), they stay read-only after the user makes the index writable
    again, and every later write fails as "read-only". A chmod is safe beside other connections.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & stat.S_IWUSR:
        return  # the index itself is read-only: so should they be
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        try:
            if not companion.stat().st_mode & stat.S_IWUSR:
                companion.chmod(stat.S_IMODE(mode))
        except OSError:
            continue  # absent, or another user's: SQLite reports what it cannot open


@every_public_method
class Index(PostTables, ReviewTables):
    """A photobatch index on disk; open it with ``Index(path)``.

    ``create=False`` (the read-only commands) refuses a file that does not exist yet instead of
    creating it. A file that is neither empty nor a photobatch index is refused before anything
    is written to it, WAL mode included, so another application's database stays as it was.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise IndexOpenError(f"no index yet at {path}: run photobatch scan first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _writable_companions(path)
            self.db = sqlite_utils.Database(path)
        except (OSError, sqlite3.Error) as exc:
            raise IndexOpenError(f"{path}: cannot open the index: {sqlite_problem(exc)}") from exc
        try:
            self.db.execute("PRAGMA busy_timeout = 10000")
            self._check_ours()
            self.db.enable_wal()
            self._migrate()
        except BaseException as exc:
            self.db.close()
            if isinstance(exc, sqlite3.Error):
                raise IndexOpenError(
                    f"{path}: cannot open the index: {sqlite_problem(exc)}"
                ) from exc
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------

    def _check_ours(self) -> None:
        """Refuse, having written nothing, a database that is neither new nor photobatch's, or
        one of a newer photobatch."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        tables = set(self.db.table_names())
        if version > SCHEMA_VERSION and tables >= OUR_TABLES:
            raise IndexOpenError(
                f"{self.path}: index schema version {version} is newer than this photobatch "
                f"understands ({SCHEMA_VERSION}); upgrade photobatch"
            )
        if (version == 0 and not tables) or (version > 0 and tables >= OUR_TABLES):
            return
        found = ", ".join(sorted(tables)[:5]) or "no tables"
        raise IndexOpenError(
            f"{self.path}: not a photobatch index (another application's database: user_version "
            f"{version}, tables {found}); left untouched: give photobatch its own index file"
        )

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            with self.db.atomic():
                MIGRATIONS[number](self.db)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- reads ----------------------------------------------------------------------------------

    def known_files(self) -> dict[str, IndexedFile]:
        """What the index recorded of every indexed path, by path: the rescan gate."""
        rows = self.db.execute("SELECT path, size, mtime_ns, status, sha256 FROM photos")
        return {fs_path(path): IndexedFile(*rest) for path, *rest in rows}

    def analyzed(self, hashes: Iterable[str], models: str) -> set[str]:
        """Which of these content hashes already have results of exactly these model versions."""
        sql = "SELECT sha256 FROM analyses WHERE models = ? AND sha256 IN ({marks})"
        return {r[0] for r in in_chunks(self.db, sql, list(set(hashes)), params=[models])}

    def stale_analyses(self, models: str) -> set[str]:
        """Content hashes whose results came from other model versions than ``models``."""
        sql = "SELECT sha256 FROM analyses WHERE coalesce(models, '') != ?"
        return {r[0] for r in self.db.execute(sql, [models])}

    def record(self, path: Path) -> PhotoRecord | None:
        rows = list(self.db.query("SELECT * FROM photos WHERE path = ?", [db_path(path)]))
        if not rows:
            return None
        return self._to_record(rows[0])

    def _to_record(self, row: dict[str, Any]) -> PhotoRecord:
        metadata = PhotoMetadata(**{c: row[c] for c in METADATA_COLUMNS})
        analysis = review = None
        if row["sha256"]:
            analysis = self.analysis(row["sha256"])
            review = self.review(row["sha256"])
        return PhotoRecord(
            path=Path(fs_path(row["path"])),
            sha256=row["sha256"],
            status=row["status"],
            error=row["error"],
            metadata=metadata,
            analysis=analysis,
            review=review,
        )

    def analysis(self, sha256: str) -> Analysis | None:
        rows = list(self.db.query("SELECT * FROM analyses WHERE sha256 = ?", [sha256]))
        return _to_analysis(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*) FROM photos GROUP BY status")
        counts = {status: n for status, n in rows}
        counts["analyses"] = self.db["analyses"].count
        return counts

    def last_scan(self) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM scans ORDER BY id DESC LIMIT 1"))
        return rows[0] if rows else None

    def recent(self, limit: int) -> list[PhotoRecord]:
        """The ``limit`` photos most recently added to the index (missing ones left out)."""
        sql = (
            "SELECT * FROM photos WHERE status != 'missing' ORDER BY first_seen DESC, path LIMIT ?"
        )
        return [self._to_record(row) for row in self.db.query(sql, [limit])]

    def models_in_use(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT models FROM analyses WHERE models IS NOT NULL")
        return sorted(r[0] for r in rows)

    def search(self, query: str, limit: int | None = 20) -> list[SearchHit]:
        """Photos whose caption, hashtags or grounded objects match ``query``, surest first
        (``photobatch.library.search`` says how a query is read and ranked); at most ``limit``
        (None: all). A query that cannot be searched is a ``SearchQueryError``."""
        match = parse_query(query)
        sql = (
            "SELECT photos.path, analyses.caption, analyses.caption_confidence, "
            "analyses.objects, analyses.candidate_scores FROM analyses_fts JOIN analyses "
            "ON analyses.rowid = analyses_fts.rowid JOIN photos ON photos.sha256 = analyses.sha256 "
            "WHERE analyses_fts MATCH ? AND photos.status = 'ok'"
        )
        try:
            rows = self.db.execute(sql, [match.fts]).fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_ERROR:
                raise  # the index itself failed (locked, damaged, unreadable)
            raise SearchQueryError(
                f"search: {query!r} is not a query SQLite's full-text search understands "
                f"({exc}): search plain words, or see the FTS5 query syntax"
            ) from exc
        hits = [
            match.hit(
                fs_path(path), caption, confidence, json.loads(objects or "{}"),
                json.loads(scores or "{}"),
            )
            for path, caption, confidence, objects, scores in rows
        ]  # fmt: skip
        hits.sort(key=lambda h: (-h.relevance, h.path))
        return hits if limit is None else hits[:limit]

    def analysed_photos(self) -> int:
        """How many present photos have results: what a search looks through."""
        sql = (
            "SELECT count(*) FROM photos JOIN analyses ON analyses.sha256 = photos.sha256 "
            "WHERE photos.status = 'ok'"
        )
        return int(self.db.execute(sql).fetchone()[0])

    def export_rows(
        self, table: str = "photos", *, approved: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Rows for ``photobatch export``: one per image file found (failures included), or one
        per imported post with ``table="posts"``. A photo's caption, hashtags and post draft are
        as reviewed (the user's where they decided, see ``PhotoRecord.reviewed``), ``review``
        says what they decided and ``model_*`` what the models say now; ``approved``: only
        approved photos. ``hashtag_scores`` is a mapping (None without
        results): each format writes it its own way."""
        if table == "posts":
            yield from self._post_export_rows()
            return
        if table != "photos":
            raise ValueError(f"unknown table {table!r}")
        tables = {"analyses": "a", "reviews": "r"}
        columns = [
            f"{table}.{c[1]} AS {alias}_{c[1]}"
            for table, alias in tables.items()
            for c in self.db.execute(f"PRAGMA table_info({table})")
            if c[1] != "embedding"
        ]
        sql = (
            f"SELECT photos.*, {', '.join(columns)} FROM photos "
            "LEFT JOIN analyses ON analyses.sha256 = photos.sha256 "
            "LEFT JOIN reviews ON reviews.sha256 = photos.sha256"
            + (" WHERE reviews.verdict = 'approved'" if approved else "")
            + " ORDER BY photos.path"
        )
        for row in self.db.query(sql):
            parts: dict[str, dict[str, Any]] = {alias: {} for alias in tables.values()}
            for key in list(row):
                if key[:2] in ("a_", "r_"):
                    parts[key[0]][key[2:]] = row.pop(key)
            model = _to_analysis(parts["a"]) if parts["a"]["sha256"] else None
            review = review_from_row(parts["r"]) if parts["r"]["sha256"] else None
            record = PhotoRecord(
                Path(fs_path(row["path"])),
                row["sha256"],
                row["status"],
                analysis=model,
                review=review,
            )
            shown = record.reviewed().analysis
            out = {
                **{c: row.get(c) for c in EXPORT_COLUMNS["photos"]},
                "path": str(record.path),
                "review": review.state if review else None,
            }
            if shown is not None and model is not None:
                out.update(
                    caption=shown.caption,
                    caption_confidence=shown.caption_confidence,
                    caption_source=shown.caption_source,
                    hashtags=format_hashtags(shown.hashtags),
                    hashtag_scores=shown.hashtag_scores,
                    labels="; ".join(shown.labels),
                    post_text=shown.post_text,
                    model_caption=model.caption,
                    model_hashtags=format_hashtags(model.hashtags),
                )
            yield out

    # -- writes ---------------------------------------------------------------------------------

    def write_batch(self, photos: list[PhotoRow], analyses: list[Analysis]) -> None:
        """Store one scan batch (its paths' rows and the new results) in a single transaction."""
        stamp = now()
        photo_rows = []
        for photo in photos:
            row: dict[str, Any] = {
                "path": db_path(photo.found.path),
                "sha256": photo.sha256,
                "size": photo.found.size,
                "mtime_ns": photo.found.mtime_ns,
                "status": photo.status,
                "error": db_text(photo.error),
                "last_seen": stamp,
                **asdict(photo.metadata or PhotoMetadata()),
            }
            row["warning"] = db_text(row["warning"])
            photo_rows.append(row)
        analysis_rows = [
            {
                "sha256": a.sha256,
                "labels": json.dumps(a.labels, ensure_ascii=False),
                "caption": a.caption,
                "caption_confidence": a.caption_confidence,
                "caption_source": a.caption_source,
                "hashtags": json.dumps(a.hashtags, ensure_ascii=False),
                "candidates": json.dumps(a.candidates, ensure_ascii=False),
                "hashtag_scores": json.dumps(a.hashtag_scores, ensure_ascii=False),
                "candidate_scores": json.dumps(a.candidate_scores, ensure_ascii=False),
                "objects": json.dumps(a.objects, ensure_ascii=False),
                "terms": indexed_terms(a),
                "post_text": a.post_text,
                "embedding": a.embedding,
                "models": a.models,
                "personalized_by": a.personalized_by,
                "plugins": a.plugins,
                "plugin_changes": _changes_json(a),
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

    def unpersonalized(
        self, head: str | None, plugins: str | None = None, models: str | None = None
    ) -> Iterator[Analysis]:
        """Analyses whose hashtags were ranked by another personal head (or none) than ``head``,
        and those of ``models`` that other after-analysis ``plugins`` ran on, of photos present,
        analysed before the last scan ended (a plugin that failed in the scan going on is tried
        again by the next one, not twice in one)."""
        sql = (
            "SELECT sha256 FROM analyses WHERE coalesce(personalized_by, '') != ? OR "
            "(coalesce(plugins, '') != ? AND models = ? AND EXISTS (SELECT 1 FROM photos WHERE "
            "photos.sha256 = analyses.sha256 AND photos.status = 'ok') AND analyzed_at <= "
            "(SELECT max(finished_at) FROM scans))"
        )
        params = [head or "", plugins or "", models]
        for (sha256,) in self.db.execute(sql, params).fetchall():
            analysis = self.analysis(sha256)
            if analysis is not None:
                yield analysis

    def set_personal(self, analyses: list[Analysis]) -> None:
        """Store re-ranked hashtags and post drafts of already analysed photos, with what their
        after-analysis plugins made of them, in one go."""
        with self.db.atomic():
            for a in analyses:
                self.db.execute(
                    "UPDATE analyses SET hashtags = ?, hashtag_scores = ?, post_text = ?, "
                    "personalized_by = ?, labels = ?, candidates = ?, candidate_scores = ?, "
                    "plugins = ?, plugin_changes = ? WHERE sha256 = ?",
                    [
                        json.dumps(a.hashtags, ensure_ascii=False),
                        json.dumps(a.hashtag_scores, ensure_ascii=False),
                        a.post_text,
                        a.personalized_by,
                        json.dumps(a.labels, ensure_ascii=False),
                        json.dumps(a.candidates, ensure_ascii=False),
                        json.dumps(a.candidate_scores, ensure_ascii=False),
                        a.plugins,
                        _changes_json(a),
                        a.sha256,
                    ],
                )

    def paths_with(self, hashes: Iterable[str]) -> dict[str, list[Path]]:
        """Paths of present photos by content hash, for these hashes (to refresh their sidecars,
        or find where a moved photo was)."""
        hashes = list(set(hashes))
        found: dict[str, list[Path]] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT path, sha256 FROM photos WHERE status = 'ok' AND sha256 IN ({marks})"
            for path, sha in self.db.execute(sql, chunk):
                found.setdefault(sha, []).append(Path(fs_path(path)))
        return found

    def move(self, src: Path, dest: Path) -> list[str]:
        """Re-point the rows of a moved file or folder; returns their new paths.

        A move keeps size and mtime, so the rescan gate sees the photos as unchanged.
        """
        old, new = str(src), str(dest)
        # Compared as bytes, so text rows and non-UTF-8 (BLOB) rows below ``src`` both match.
        prefix = os.fsencode(old.rstrip("/") + "/")
        rows = self.db.execute(
            "SELECT path FROM photos WHERE CAST(path AS BLOB) = ? "
            "OR substr(CAST(path AS BLOB), 1, ?) = ?",
            [os.fsencode(old), len(prefix), prefix],
        ).fetchall()
        moved = []
        with self.db.atomic():
            for (stored,) in rows:
                target = new + fs_path(stored)[len(old) :]
                self.db.execute("DELETE FROM photos WHERE path = ?", [db_path(target)])
                self.db.execute(
                    "UPDATE photos SET path = ? WHERE path = ?", [db_path(target), stored]
                )
                moved.append(target)
        return moved

    def mark_missing(self, paths: Iterable[str]) -> int:
        """Flag paths that are no longer on disk; their rows and results are kept."""
        paths = [db_path(p) for p in paths]
        with self.db.atomic():
            in_chunks(
                self.db, "UPDATE photos SET status = 'missing' WHERE path IN ({marks})", paths
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


def _to_analysis(row: dict[str, Any]) -> Analysis:
    return Analysis(
        sha256=row["sha256"],
        labels=json.loads(row["labels"] or "[]"),
        caption=row["caption"],
        caption_confidence=row["caption_confidence"],
        caption_source=row["caption_source"],
        hashtags=json.loads(row["hashtags"] or "[]"),
        candidates=json.loads(row["candidates"] or "[]"),
        hashtag_scores=json.loads(row["hashtag_scores"] or "{}"),
        candidate_scores=json.loads(row["candidate_scores"] or "{}"),
        objects=json.loads(row["objects"] or "{}"),
        post_text=row["post_text"],
        embedding=row.get("embedding"),
        models=row["models"],
        personalized_by=row["personalized_by"],
        plugins=row["plugins"],
        plugin_changes=PluginChanges(**json.loads(row["plugin_changes"]))
        if row["plugin_changes"]
        else None,
    )


def _changes_json(analysis: Analysis) -> str | None:
    changes = analysis.plugin_changes
    return json.dumps(asdict(changes), ensure_ascii=False) if changes is not None else None
