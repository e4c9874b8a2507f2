"""Replacing a file in one step, and trusting a cache only while it is intact.

Everything photobatch writes where a user's file may already be (sidecars, exports, attention
figures) goes through :func:`replacing`: the content goes to a temporary file in the same folder,
which is renamed over the target only once it is complete. A cache file (the encoder's exported
graph, feature maps) gets its sha256 recorded beside it (:func:`record_digest`) and is used only
while :func:`intact` says it still matches; otherwise it is made again.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def temp_name_pattern(suffix: str) -> str:
    """A regular expression matching the temporary names :func:`replacing` gives a file whose
    name ends with ``suffix``: "." + name + "." + mkstemp's 8 characters + ".tmp"."""
    return rf"\..+{suffix}\.[a-z0-9_]{{8}}\.tmp"


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` in one rename when the block ends.

    The old file's permissions are kept (a new file gets 0644). A file replaced is on disk before
    the rename, so a power cut cannot leave it empty. A new one is not waited for (that fsync was
    a third of a scan's commit time): a power cut can leave it empty or absent. If the block
    raises, ``path`` is left as it was and the temporary file is removed.

    A target that exists and is not a regular file (``/dev/null``, a named pipe) is written in
    place: there is no file to rename over.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as fh:
            yield fh
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if st is not None:
                os.fsync(fh.fileno())
        os.chmod(tmp, st.st_mode & 0o777 if st is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Caches (files photobatch can always make again) are trusted only while they hold the bytes
# they were written with: a damaged file can still load, and then computes something else.


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def record_digest(path: Path) -> None:
    """Write the sha256 of the complete file ``path`` beside it (``NAME.sha256``), in one
    rename: the record ``intact`` checks. Written after the file, so a file without one (a run
    killed in between) is never trusted."""
    with replacing(_digest_path(path)) as fh:
        fh.write(f"{_sha256(path)}\n".encode())


def intact(path: Path) -> bool:
    """Whether ``path`` exists and holds the bytes its recorded sha256 says."""
    try:
        return _digest_path(path).read_text().strip() == _sha256(path)
    except OSError:
        return False
