"""One scan per index at a time, enforced with an advisory file lock.

``flock`` is released by the kernel when the process dies, so a crashed or killed scan never
leaves a stale lock behind for the 3 a.m. cron run to trip over.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from photobatch.core.errors import UserError

EX_TEMPFAIL = 75  # sysexits.h: "try again later", what cron wrappers expect for a busy resource


class LockHeld(UserError):
    """Another process holds the scan lock of this index: try again later (exit 75)."""

    exit_code = EX_TEMPFAIL

    def __init__(self, lock_path: Path, holder: str) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another photobatch scan is running on this index (lock {lock_path}"
            f"{', held by pid ' + holder if holder else ''}); exiting"
        )


def _open_lock(path: Path, what: str) -> int:
    """The lock file beside the index, opened (created if need be)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only folder, or a file where the folder should be
        raise UserError(f"{path}: cannot create the {what}: {exc.strerror}") from exc


class ScanLock:
    """Context manager holding ``<index>.lock`` exclusively, without waiting."""

    def __init__(self, index_path: Path) -> None:
        self.path = index_path.with_name(index_path.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> ScanLock:
        fd = _open_lock(self.path, "scan lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class SidecarLock:
    """Context manager holding ``<index>.sidecars.lock`` exclusively, waiting for it.

    Held briefly by whatever writes a photo's sidecars from the index (a scan's batch, an edit
    in ``photobatch review``) from reading the record to committing it, so a review saved while
    a scan runs can never be overwritten by the scan's older view of the same photo.
    """

    def __init__(self, index_path: Path) -> None:
        self.path = index_path.with_name(index_path.name + ".sidecars.lock")
        self._fd: int | None = None

    def __enter__(self) -> SidecarLock:
        self._fd = _open_lock(self.path, "sidecar lock")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
