"""The index as other programs see it: sqlite3 reads it, WAL, schema version, FTS, batches."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRow
from photobatch.library.index import Index
from photobatch.library.schema import SCHEMA_VERSION
from photobatch.library.sqlite_errors import IndexOpenError


def fill(index: Index, tmp_path: Path) -> None:
    canon = PhotoMetadata(camera_make="Canon")
    photos = [
        PhotoRow(FoundFile(tmp_path / "dog.jpg", 10, 1), "ok", "a" * 64, canon),
        PhotoRow(FoundFile(tmp_path / "bad.jpg", 3, 1), "error", "b" * 64, error="not an image"),
    ]
    analyses = [
        Analysis(
            sha256="a" * 64,
            labels=["golden retriever"],
            caption="a dog runs on the beach",
            hashtags=["dog", "beach", "puppy"],
        )
    ]
    index.write_batch(photos, analyses)


def test_sqlite3_reads_the_index(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    with Index(db) as index:
        fill(index, tmp_path)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = con.execute(
        "SELECT p.path, p.status, a.caption FROM photos p LEFT JOIN analyses a USING (sha256) "
        "ORDER BY p.path"
    ).fetchall()
    assert rows == [
        (str(tmp_path / "bad.jpg"), "error", None),
        (str(tmp_path / "dog.jpg"), "ok", "a dog runs on the beach"),
    ]
    assert shutil.which("sqlite3"), "needs the sqlite3 client (.ci/run installs it)"
    out = subprocess.run(
        ["sqlite3", str(db), "SELECT count(*) FROM photos;"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "2"


def test_full_text_search_finds_caption_and_hashtag_words(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        fill(index, tmp_path)
        [hit] = index.search("beach")
        assert (hit.path, hit.caption) == (str(tmp_path / "dog.jpg"), "a dog runs on the beach")
        assert [h.path for h in index.search("puppy")] == [str(tmp_path / "dog.jpg")]
        assert index.search("cat") == []
        # An ImageNet label is what a photo might show, not what grounding supports.
        assert index.search("retriever") == []


def test_export_rows_include_failures_and_format_hashtags(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        fill(index, tmp_path)
        rows = {Path(r["path"]).name: r for r in index.export_rows()}
    assert rows["dog.jpg"]["hashtags"] == "#dog #beach #puppy"
    assert rows["dog.jpg"]["camera_make"] == "Canon"
    assert rows["bad.jpg"]["status"] == "error"
    assert rows["bad.jpg"]["error"] == "not an image"


def test_missing_marks_rows_but_keeps_results(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        fill(index, tmp_path)
        index.mark_missing([str(tmp_path / "dog.jpg")])
        record = index.record(tmp_path / "dog.jpg")
    assert record is not None and record.status == "missing"
    assert record.analysis is not None and record.analysis.caption == "a dog runs on the beach"


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    Index(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(IndexOpenError, match="newer than this photobatch"):
        Index(db)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexOpenError, match=str(db)):
        Index(db)


def test_a_v3_index_upgrades_to_confidences_and_keeps_its_results(tmp_path: Path) -> None:
    import sqlite_utils

    from photobatch.library.schema import MIGRATIONS

    db = tmp_path / "index.db"
    old = sqlite_utils.Database(db)
    for migrate in MIGRATIONS[:3]:  # an index written by photobatch before grounding
        migrate(old)
    old.execute("PRAGMA user_version = 3")
    old["analyses"].insert(
        {"sha256": "a" * 64, "caption": "a dog runs", "hashtags": '["dog"]', "labels": "[]"}
    )
    old.conn.commit()
    old.close()
    with Index(db) as index:
        assert index.schema_version == SCHEMA_VERSION
        kept = index.analysis("a" * 64)
        assert kept is not None and kept.caption == "a dog runs" and kept.hashtags == ["dog"]
        assert kept.caption_confidence is None and kept.hashtag_scores == {}
        index.write_batch(
            [PhotoRow(FoundFile(tmp_path / "p.jpg", 1, 1), "ok", "c" * 64)],
            [
                Analysis(
                    "c" * 64,
                    caption="A pizza on a plate.",
                    caption_confidence=0.55,
                    caption_source="concept",
                    hashtags=["pizza", "food"],
                    hashtag_scores={"pizza": 0.9, "food": 0.55},
                )
            ],
        )
        new = index.analysis("c" * 64)
        assert new is not None
        assert (new.caption_confidence, new.caption_source) == (0.55, "concept")
        assert new.hashtag_scores == {"pizza": 0.9, "food": 0.55}
        assert [h.path for h in index.search("food")] == [str(tmp_path / "p.jpg")]
