"""The one lifecycle every model follows: construct cheaply, ``load()`` lazily, stamp a version.

A ``Model`` names the files its weights live in and the settings that change its outputs; its
``version`` is a short hash of both. Computing it reads the files' bytes (cached by path, size,
mtime and inode) but never imports torch or loads weights, so a scan can tell which stored results
came from other models without paying for the models. Every predict-style method calls
``load()`` first; ``load()`` is thread-safe, does nothing while the files are unchanged and loads
again when they were replaced (a model retrained at the same path in a long-running watch).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

VERSION_CHARS = 8
_digests: dict[tuple[str, int, int, int], str] = {}
_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """Hex sha256 of a file's bytes, remembered until its size, mtime or inode change."""
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _digests_lock:
        known = _digests.get(key)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        known = digest.hexdigest()
        with _digests_lock:
            _digests[key] = known
    return known


class Model(ABC):
    """A model's files, output-changing settings and load-once lifecycle (see module docs)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._loaded_version: str | None = None

    @abstractmethod
    def files(self) -> tuple[Path, ...]:
        """The files the weights are read from."""

    def settings(self) -> dict[str, object]:
        """Settings that change the outputs (a new value makes stored results stale)."""
        return {}

    @abstractmethod
    def _load(self) -> None:
        """Read the weights; called by ``load()`` under its lock."""

    @property
    def version(self) -> str:
        """Short hash of the files' bytes and the settings, as they are on disk now."""
        key = json.dumps(
            [[file_digest(f) for f in self.files()], self.settings()], sort_keys=True, default=str
        )
        return hashlib.sha256(key.encode()).hexdigest()[:VERSION_CHARS]

    @property
    def tag(self) -> str:
        """``name@version``, as stored with results."""
        return f"{self.name}@{self.version}"

    @property
    def loaded(self) -> bool:
        return self._loaded_version is not None

    def load(self) -> None:
        """Load the weights unless the loaded ones are still current; safe from any thread."""
        current = self.version
        if self._loaded_version == current:
            return
        with self._load_lock:
            if self._loaded_version != current:
                self._load()
                self._loaded_version = current
