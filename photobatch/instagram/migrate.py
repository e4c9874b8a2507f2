"""Moving an index's personal state out of the folder it once shared with other indexes.

The personal head (``personalizer.pt``) and the imported Instagram media (``instagram/``) used to
sit beside the index, so every index in that folder shared them: a second index's scan was
re-ranked with the first one's head. They now live in the index's own ``personal_dir``. On first
use an index takes from the old place only what is provably its own, and says so in one line:

- the media files its ``post_media`` rows point to; the rows are re-pointed in one transaction
  once the files are in place, so an interrupted move resumes on the next use. A file that another
  index in the folder also points to is copied (verified against its content hash) and left there
  for that index, which moves it when its turn comes.
- the head, when this index has imported posts and no other index in the folder has any (a head is
  only ever trained on posts); otherwise it stays where it is and the line says so.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from photobatch.core.errors import UserError
from photobatch.instagram.importer import COPY_CHUNK, MEDIA_DIR
from photobatch.library.discovery import sha256_file
from photobatch.library.index import Index

SQLITE_MAGIC = b"SQLite format 3\x00"
Others = tuple[bool, set[str] | None]  # another index: (has imported posts, real paths it names)


class MigrationError(UserError):
    """A file of the old layout could not be moved; nothing that points to it was changed."""


def migrate_personal_state(index: Index, head: Path) -> str | None:
    """Move this index's old-layout head and media into its own folder (``head`` is the new
    head's path); a line saying what moved where, or None when there was nothing to do."""
    folder = index.path.parent
    old_head, old_media = folder / head.name, folder / MEDIA_DIR
    if not old_head.is_file() and not old_media.is_dir():
        return None
    others = _other_indexes(index.path)
    moved, note = [], ""
    if count := _move_media(index, old_media, head.parent / MEDIA_DIR, others):
        moved.append(f"{count} imported photos from {old_media} to {head.parent / MEDIA_DIR}")
    if old_head.is_file() and not head.exists() and index.post_ids():
        sharing = [str(path) for path, (has_posts, _) in others.items() if has_posts]
        if sharing:
            note = (
                f"; left {old_head} where it is, since {', '.join(sharing)} in that folder has "
                "imported posts too: run 'photobatch train personalizer' to train this index's own"
            )
        else:
            head.parent.mkdir(parents=True, exist_ok=True)
            _move(old_head, head, None, keep=False)
            moved.append(f"the personal head from {old_head} to {head}")
    if not moved and not note:
        return None
    what = f"moved {' and '.join(moved)}" if moved else "moved nothing"
    return f"photobatch: {index.path} keeps its personal state in its own folder: {what}{note}"


def _move_media(index: Index, old: Path, new: Path, others: dict[Path, Others]) -> int:
    """Move the files this index's rows point to under ``old``, then re-point the rows."""
    if not old.is_dir():
        return 0
    real_old = os.path.realpath(old)
    taken_by_others = set().union(*(paths for _, paths in others.values() if paths is not None))
    everything_shared = any(paths is None for _, paths in others.values())
    repoint: dict[Path, Path] = {}
    for stored, sha256 in index.post_media_files():
        if os.path.realpath(stored.parent) != real_old:
            continue
        target = new / stored.name
        if stored.is_file():
            new.mkdir(parents=True, exist_ok=True)
            shared = everything_shared or os.path.realpath(stored) in taken_by_others
            _move(stored, target, sha256, keep=shared)
        if target.is_file():  # moved now, or by an earlier, interrupted run
            repoint[stored] = target
    index.repoint_post_media(repoint)
    if repoint and not any(old.iterdir()):
        old.rmdir()
    return len(set(repoint.values()))


def _move(src: Path, dest: Path, sha256: str | None, keep: bool) -> None:
    """Move ``src`` to ``dest`` (or copy it, with ``keep``); a copy, made when a rename cannot
    be, is checked against the content hash before the source goes."""
    try:
        if not keep:
            try:
                os.rename(src, dest)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        expected = sha256 or sha256_file(src)
        if not (dest.is_file() and sha256_file(dest) == expected):
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".move-", suffix=dest.suffix)
            try:
                with open(src, "rb") as source, os.fdopen(fd, "wb") as out:
                    while chunk := source.read(COPY_CHUNK):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if sha256_file(Path(tmp)) != expected:
                    raise OSError(errno.EIO, "the copy does not match the original")
                os.replace(tmp, dest)
            finally:
                Path(tmp).unlink(missing_ok=True)
        if not keep:
            src.unlink()
    except OSError as exc:
        raise MigrationError(
            f"{src}: cannot move it to {dest}: {exc.strerror or exc} (it is still where it was)"
        ) from exc


def _other_indexes(index: Path) -> dict[Path, Others]:
    """The other SQLite files in the index's folder, read without writing to them.

    One that cannot be read is taken to have posts and to point to every file, so nothing it
    might need is moved away from it.
    """
    found: dict[Path, Others] = {}
    for path in sorted(index.parent.iterdir()):
        if path == index or not path.is_file() or not _is_sqlite(path):
            continue
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if "posts" not in tables:
                    continue
                has_posts = db.execute("SELECT 1 FROM posts LIMIT 1").fetchone() is not None
                rows = db.execute("SELECT path FROM post_media WHERE path IS NOT NULL")
                found[path] = (has_posts, {os.path.realpath(r[0]) for r in rows})
        except sqlite3.Error:
            found[path] = (True, None)
    return found


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False
