"""Hostile or broken index files end as one line naming the file, and a file not ours is unchanged.

Each test runs the real command line (click's CliRunner) and checks the single stderr line, the
exit code, that no traceback was printed, and what happened to the files on disk.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from cli_helpers import one_line
from click.testing import CliRunner, Result

from photobatch.cli import cli
from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRow
from photobatch.library.index import Index
from photobatch.library.schema import SCHEMA_VERSION

READ_ONLY = [["status"], ["export", "--format", "csv"], ["search", "dog"], ["show", "x.jpg"]]


def run(index: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(index), *args])


def fill(index: Index, folder: Path, n: int = 1) -> None:
    """``n`` analysed photos (the first a dog on a beach) and one unreadable file."""
    photos = [
        PhotoRow(FoundFile(folder / f"photo{i:04}.jpg", 10, 1), "ok", f"{i:064x}", PhotoMetadata())
        for i in range(n)
    ]
    photos.append(PhotoRow(FoundFile(folder / "bad.jpg", 3, 1), "error", error="not an image"))
    analyses = [
        Analysis(sha256=f"{i:064x}", labels=["dog"], caption=f"a dog runs on the beach {i}")
        for i in range(n)
    ]
    index.write_batch(photos, analyses)


def foreign_database(path: Path, user_version: int) -> bytes:
    """Another application's SQLite file, in rollback-journal mode as most are."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO notes (body) VALUES (?)", [("shopping",), ("dentist",)])
    con.execute(f"PRAGMA user_version = {user_version}")
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize("user_version", [0, 7])
@pytest.mark.parametrize("command", [*READ_ONLY[:3], ["scan", "-q", "--no-sidecars"]])
def test_foreign_sqlite_file_stays_byte_identical(
    tmp_path: Path, user_version: int, command: list[str]
) -> None:
    other = tmp_path / "notes.sqlite"
    before = foreign_database(other, user_version)
    if command[0] == "scan":
        (tmp_path / "photos").mkdir()
        command = [*command, str(tmp_path / "photos")]
    line = one_line(run(other, *command))
    assert line.startswith(f"photobatch: {other}: not a photobatch index")
    assert other.read_bytes() == before
    assert not Path(f"{other}-wal").exists() and not Path(f"{other}-shm").exists()


def test_newer_schema_is_refused_before_switching_to_wal(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    Index(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    before = db.read_bytes()
    assert "newer than this photobatch" in one_line(run(db, "status"))
    assert db.read_bytes() == before
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize("command", READ_ONLY)
def test_read_only_commands_never_create_an_index(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "nowhere" / "index.db"
    line = one_line(run(db, *command))
    assert line == f"photobatch: no index yet at {db}: run photobatch scan first"
    assert not db.parent.exists()


def test_full_disk_under_the_index_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's page limit, set on every connection, fails the writes as a full disk does."""
    db = tmp_path / "index.db"
    Index(db).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    connect = sqlite3.connect

    def full_disk(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        con = connect(*args, **kwargs)
        con.execute(f"PRAGMA max_page_count = {pages}")
        return con

    monkeypatch.setattr(sqlite_utils.db.sqlite3, "connect", full_disk)
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(60):  # unreadable files: recorded without loading any model
        (photos / f"{'long name ' * 10}{n}.jpg").write_bytes(b"not a photo")
    line = one_line(run(db, "scan", "-q", "--no-sidecars", str(photos)))
    assert line.startswith(f"photobatch: {db}: the disk holding the index is full")
    assert "database or disk is full" in line


def test_corrupted_index_pages_are_one_line(tmp_path: Path) -> None:
    db = tmp_path / "index.db"
    with Index(db) as index:
        fill(index, tmp_path, n=400)
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    # The schema's pages survive (sqlite3's dbstat says which they are: a schema that outgrows
    # the first page continues on a later one), and every table page past the fourth is garbage.
    schema = subprocess.run(
        ["sqlite3", str(db), "SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data = bytearray(db.read_bytes())
    for number in range(5, len(data) // page + 1):  # pages are numbered from 1
        if str(number) not in schema:
            data[(number - 1) * page : number * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    for command in READ_ONLY[:3]:
        line = one_line(run(db, *command))
        assert line.startswith(f"photobatch: {db}: the index is damaged"), line
        assert "malformed" in line or "vtable constructor failed" in line


def test_index_folder_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    """As root a mode-555 folder is writable; a file where the folder should be never is."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file\n", encoding="utf-8")
    (tmp_path / "photos").mkdir()
    db = blocker / "index.db"
    line = one_line(run(db, "scan", "-q", str(tmp_path / "photos")))
    assert line.startswith(f"photobatch: {db}.lock: cannot create the scan lock: ")
    line = one_line(run(db, "import-instagram", str(tmp_path / "photos")))
    assert line.startswith(f"photobatch: {db}: cannot open the index")


@pytest.mark.parametrize(("query", "found"), [("#dog", True), ("man -woman", False)])
def test_fts_syntax_in_a_search_is_searched_as_plain_words(
    tmp_path: Path, query: str, found: bool
) -> None:
    db = tmp_path / "index.db"
    with Index(db) as index:
        fill(index, tmp_path)
    result = run(db, "search", query)
    if not found:
        assert (
            one_line(result)
            == f"photobatch: no photo matches {query!r} (searched 1 analysed photos)"
        )
        return
    assert result.exit_code == 0 and not result.stderr, result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        str(tmp_path / "photo0000.jpg")
    ]


def test_the_read_only_files_a_refused_scan_left_do_not_outlive_the_fix(tmp_path: Path) -> None:
    """SQLite makes ``-wal`` and ``-shm`` with the index's permissions. Opened while the index was
    read-only, they stayed read-only after the user made it writable again, and every later scan
    said "read-only". The index's owner's permissions are given back to them at open."""
    db = tmp_path / "index.db"
    Index(db).close()
    db.chmod(0o444)
    reader = sqlite3.connect(db)  # what any command on the read-only index leaves behind
    reader.execute("SELECT count(*) FROM photos").fetchone()
    leftovers = [Path(f"{db}-wal"), Path(f"{db}-shm")]
    for path in leftovers:
        assert path.exists() and path.stat().st_mode & 0o777 == 0o444
    db.chmod(0o644)  # the user's fix
    with Index(db) as index:
        assert [path.stat().st_mode & 0o777 for path in leftovers] == [0o644, 0o644]
        fill(index, tmp_path)
    reader.close()
