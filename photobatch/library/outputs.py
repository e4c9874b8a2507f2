"""Files written where the user points (``export -o``, ``show --attention``): never over what
the user owns or photobatch keeps, and never half-written.

A user-given output path is checked before anything is opened, through any symbolic link: it may
not be the index, its SQLite companions (``-wal``, ``-shm``, ``-journal``), its scan or sidecar
lock or anything in its personal folder; nor a photo (a path the index knows, or an existing file
with an image name that the caller does not recognise as its own output); nor a sidecar (a name a
sidecar writer gives a photo, or a file a writer recognises as one it wrote). The content then
replaces the file in one rename (``photobatch.core.atomic.replacing``), so a full disk leaves the
old one as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from photobatch.core.atomic import replacing
from photobatch.core.config import SidecarConfig, personal_dir
from photobatch.core.errors import UserError
from photobatch.core.hooks import SidecarError, sidecar_writers
from photobatch.library.discovery import is_image_name
from photobatch.library.index import Index
from photobatch.library.sidecars import read_existing, sidecar_path

# What SQLite and photobatch keep beside an index file, by the suffix added to its name.
INDEX_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock", ".sidecars.lock")


class OutputRefused(UserError):
    """An output path names something that must not be overwritten; nothing was written."""


def check_output(
    path: Path,
    index: Index,
    sidecars: SidecarConfig,
    *,
    ours: Callable[[Path], bool] = lambda _: False,
) -> Path:
    """The file ``path`` leads to, once it is known to be none of the index's files, a photo or a
    sidecar; else ``OutputRefused``. ``ours`` tells an earlier output of the caller's (an
    attention figure is a PNG) from a photo."""
    given = path.expanduser().absolute()
    target = Path(os.path.realpath(given))
    db = Path(os.path.realpath(index.path))
    why = None
    if any(target == db.with_name(db.name + suffix) for suffix in INDEX_COMPANIONS):
        why = f"it is the index {index.path} or one of SQLite's files beside it"
    elif target == personal_dir(db) or personal_dir(db) in target.parents:
        why = f"it is in the index's own folder {personal_dir(index.path)}"
    elif index.record(target) is not None or index.record(given) is not None:
        why = "it is a photo in the index"
    elif (sidecar := _sidecar_of(target, sidecars)) is not None:
        why = f"it is a sidecar ({sidecar})"
    elif target.exists() and is_image_name(target.name) and not ours(target):
        why = "it is a photo"
    if why:
        raise OutputRefused(f"{path}: not written: {why}; choose another file")
    return target


@contextmanager
def output_file(path: Path, target: Path, what: str) -> Iterator[BinaryIO]:
    """``target`` (what ``check_output`` returned for ``path``) replaced in one rename by what
    the block writes; an ``OSError`` (a missing folder, a full disk) is one line naming
    ``path`` and ``what`` it was to hold, the old file left as it was."""
    try:
        with replacing(target) as fh:
            yield fh
    except OSError as exc:
        raise UserError(f"{path}: cannot write {what}: {exc.strerror or exc}") from exc


def _sidecar_of(target: Path, options: SidecarConfig) -> str | None:
    """How ``target`` is a sidecar, None when it is not one: a name a writer gives a photo (one
    beside it under basename naming), or a file a writer says it wrote."""
    for writer in sidecar_writers().values():
        if not target.name.endswith(writer.suffix) or len(target.name) == len(writer.suffix):
            continue
        stem = target.name[: -len(writer.suffix)]
        if is_image_name(stem):
            return f"the {writer.name} sidecar of {stem}"
        beside = [n for n in _names(target.parent) if is_image_name(n) and Path(n).stem == stem]
        if beside and sidecar_path(target.parent / beside[0], writer.suffix, options) == target:
            return f"the {writer.name} sidecar of {beside[0]}"
        try:
            existing = read_existing(target)
        except (SidecarError, OSError):  # not a plain file: not a sidecar photobatch wrote
            continue
        if existing and getattr(writer, "wrote", lambda _: False)(existing):
            return f"a {writer.name} sidecar photobatch wrote"
    return None


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
