"""Thumbnails of indexed photos for ``photobatch review`` and ``report --html``.

Made once per content from the photo itself, upright by its EXIF orientation (decoded by
``imaging.load_image``, so JPEG draft mode, RAW previews and HEIC work as in a scan), and kept in
a cache under the user's cache folder, never beside the photos. The cache is keyed by the
content's sha256, so a photo whose content changes gets a new thumbnail and a moved one keeps its
own; it is bounded in size, the least recently used thumbnails going first.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from photobatch.core.config import cache_home
from photobatch.library.imaging import load_image

# The long side of each kind of thumbnail, in pixels: a card on the page (twice its CSS size,
# for high-density screens) and the larger view a click opens.
SIZES = {"card": 480, "large": 1600}
QUALITY = 82


def thumbnail_folder() -> Path:
    return cache_home() / "thumbnails"


class Thumbnails:
    """The thumbnail cache: ``get`` returns JPEG bytes, making the thumbnail on first use."""

    def __init__(self, folder: Path | None = None, max_bytes: int = 1024 * 2**20) -> None:
        self.folder = folder or thumbnail_folder()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes in the cache, counted on the first write
        self._making: dict[str, threading.Event] = {}  # files some thread is making now

    def path(self, name: str, suffix: str = ".jpg") -> Path:
        return self.folder / name[:2] / f"{name}{suffix}"

    def get(self, sha256: str, photo: Path, size: str = "card") -> bytes:
        """The thumbnail of content ``sha256``, made from ``photo`` when not cached yet.

        Raises ``ImageError`` when the photo cannot be decoded.
        """
        return self.cached(f"{sha256}-{SIZES[size]}", ".jpg", lambda: render(photo, SIZES[size]))

    def cached(self, name: str, suffix: str, make: Callable[[], bytes]) -> bytes:
        """The cached file ``name`` (a content's hash first), made by ``make`` when missing;
        anything derived from a photo that is slow to make again (the attention figure too).
        Threads asking for one file that is being made wait for it instead of making it again."""
        cached = self.path(name, suffix)
        while True:
            try:
                data = cached.read_bytes()
            except FileNotFoundError:
                pass
            else:
                with contextlib.suppress(OSError):
                    os.utime(cached)  # recently used: evicted last
                return data
            with self._lock:
                making = self._making.get(name)
                if making is None:
                    self._making[name] = making = threading.Event()
                    break  # this thread makes it
            making.wait()  # then read what the other thread made (or make it, had it failed)
        try:
            data = make()
            with contextlib.suppress(OSError):  # a full or read-only cache costs speed only
                self._store(cached, data)
            return data
        finally:
            with self._lock:
                self._making.pop(name, None)
            making.set()

    def _store(self, target: Path, data: bytes) -> None:
        """Write atomically (a concurrent reader never sees half a JPEG), then keep the cache
        under its bound."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            if self._total is None:
                self._total = sum(size for _, size, _ in self._entries())
            else:
                self._total += len(data)
            if self._total > self.max_bytes:
                self._evict()

    def _entries(self) -> list[tuple[int, int, str]]:
        """(mtime_ns, size, path) of every cached thumbnail."""
        found = []
        try:
            shards = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                continue
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found.append((st.st_mtime_ns, st.st_size, entry.path))
        return found

    def _evict(self) -> None:
        """Delete the least recently used thumbnails until the cache is at 90% of its bound."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes * 0.9:
                break
            Path(path).unlink(missing_ok=True)
            total -= size
        self._total = total


def render(photo: Path, long_side: int) -> bytes:
    """A JPEG of ``photo``, upright, fitting ``long_side`` x ``long_side`` (never enlarged)."""
    # Half the bound on each side is enough for libjpeg's draft scaling to keep the long side.
    image = load_image(photo, target=max(1, long_side // 2))
    image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=QUALITY)
    return out.getvalue()
