"""Finding photos on disk and telling which ones changed.

The walk is cheap on purpose: one ``stat`` per file and no reads, so that a rescan of an unchanged
library of 100,000 photos costs seconds. Content hashing happens only for files whose (size,
mtime_ns) gate says they are new or changed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from photobatch.core.records import FoundFile

# Camera RAW formats: decoded through LibRaw (rawpy); their sidecars are named like any photo's,
# IMG_1234.CR2.xmp, as darktable and digiKam expect.
RAW_EXTENSIONS = frozenset({".cr2", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf"})
IMAGE_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif"})
    | RAW_EXTENSIONS
)
HASH_CHUNK = 1 << 20


def is_image_name(name: str) -> bool:
    """True for names photobatch processes: a known image extension, any case, not hidden."""
    if name.startswith("."):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk(
    roots: Iterable[Path], on_error: Callable[[Path, OSError], None] | None = None
) -> Iterator[FoundFile]:
    """Yield every image file below ``roots`` (a root may also be a single file).

    Hidden files and folders are skipped, and so are sidecars (their extensions are not image
    extensions). Symlinked folders are not followed, so a link loop cannot trap the walk. An
    image-named symlink that leads nowhere (dangling, or a loop) is still yielded, with the
    link's own size and mtime, so the scan records it as unreadable instead of hiding it.
    Unreadable folders are reported through ``on_error`` and skipped.
    """
    seen: set[Path] = set()
    for root in roots:
        root = root.expanduser().absolute()
        if root.is_file():
            found = _stat(root, on_error)
            if found and root not in seen:
                seen.add(root)
                yield found
            continue
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    children = sorted(entries, key=lambda e: e.name)
            except OSError as exc:
                if on_error:
                    on_error(folder, exc)
                continue
            subfolders = []
            for entry in children:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(Path(entry.path))
                        continue
                    st = _image_stat(entry) if is_image_name(entry.name) else None
                except OSError as exc:
                    if on_error:
                        on_error(Path(entry.path), exc)
                    continue
                if st is None:
                    continue
                path = Path(entry.path)
                if path not in seen:
                    seen.add(path)
                    yield FoundFile(path, st.st_size, st.st_mtime_ns)
            stack.extend(reversed(subfolders))


def _image_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The stat of a regular file (through a symlink), the link's own for a broken symlink,
    None for anything else (a folder or device behind an image name)."""
    if not entry.is_symlink():
        return entry.stat() if entry.is_file(follow_symlinks=False) else None
    try:
        st = entry.stat()
    except OSError:  # dangling or a loop
        return entry.stat(follow_symlinks=False)
    return st if stat.S_ISREG(st.st_mode) else None


def _stat(path: Path, on_error: Callable[[Path, OSError], None] | None) -> FoundFile | None:
    try:
        st = path.stat()
    except OSError as exc:
        if on_error:
            on_error(path, exc)
        return None
    return FoundFile(path, st.st_size, st.st_mtime_ns)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content: the identity that survives moves and renames."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_problem(path: Path, exc: OSError) -> str:
    """One line naming the file and why it cannot be read, in words a user recognises."""
    if exc.errno == errno.ELOOP:
        why = "symbolic link loop"
    elif isinstance(exc, FileNotFoundError) and os.path.islink(path):
        why = f"broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
    else:
        why = exc.strerror or str(exc)
    return f"{path}: cannot read file: {why}"
