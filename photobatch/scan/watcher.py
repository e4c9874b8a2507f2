"""``photobatch watch``: keep the index current while cameras, phones and sync tools write.

After a catch-up scan, filesystem events are collected rather than acted on: a photo is processed
only once its size and mtime have stayed the same for the settle time (a file still being copied
keeps changing), and everything that settled together goes through the models as one batch.
Moves update paths in the index without touching the models. A vanished watch root (an unmounted
drive) pauses the watch instead of marking a library missing. If inotify cannot watch the tree
(the per-user watch limit, network filesystems) the watcher falls back to polling.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from photobatch.library.discovery import is_image_name
from photobatch.scan.pipeline import Scanner
from photobatch.scan.summary import ScanSummary

log = logging.getLogger("photobatch.watch")

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "fuse.rclone", "davfs"}
)


@dataclass
class _Pending:
    """Events seen but not yet acted on, guarded by one lock (watchdog calls from its thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: dict[Path, tuple[float, tuple[int, int] | None]] = field(default_factory=dict)
    gone: set[Path] = field(default_factory=set)
    moves: list[tuple[Path, Path]] = field(default_factory=list)


class _Handler(FileSystemEventHandler):
    def __init__(self, pending: _Pending) -> None:
        self.pending = pending

    def _changed(self, path: Path) -> None:
        if is_image_name(path.name) and not _hidden(path):
            with self.pending.lock:
                self.pending.gone.discard(path)
                self.pending.changed[path] = (time.monotonic(), None)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._changed(Path(os.fsdecode(event.src_path)))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._changed(Path(os.fsdecode(event.src_path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._changed(Path(os.fsdecode(event.src_path)))

    def on_deleted(self, event: FileSystemEvent) -> None:
        path = Path(os.fsdecode(event.src_path))
        with self.pending.lock:
            self.pending.changed.pop(path, None)
            self.pending.gone.add(path)

    def on_moved(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        dest = Path(os.fsdecode(event.dest_path))
        with self.pending.lock:
            self.pending.moves.append((src, dest))
            if src in self.pending.changed:  # moved before it settled: settle it at its new name
                self.pending.changed.pop(src)
                self.pending.changed[dest] = (time.monotonic(), None)


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts[1:])


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path``, from /proc/mounts ('' when unknown)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                mount = parts[1].replace("\\040", " ")
                if str(path).startswith(mount) and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        return ""
    return kind


class Watcher:
    """Watches ``roots`` and feeds settled changes to a ``Scanner`` in batches."""

    def __init__(
        self,
        scanner: Scanner,
        roots: list[Path],
        *,
        settle: float = 5.0,
        poll: bool = False,
        report: Callable[[ScanSummary], None] | None = None,
    ) -> None:
        self.scanner = scanner
        self.roots = [r.expanduser().absolute() for r in roots]
        self.settle = settle
        self.poll = poll
        self.report = report or (lambda summary: log.info(summary.line()))
        self.pending = _Pending()
        self.stopping = threading.Event()
        self.observer: BaseObserver | None = None

    def stop(self, *_: object) -> None:
        """Ask the loop to finish the batch in hand and return (signal handler too)."""
        self.stopping.set()

    def run(self, *, tick: float = 0.5, reanalyse: bool = False) -> None:
        """Catch up (analysing every photo again with ``reanalyse``), then watch until ``stop()``
        (SIGTERM and SIGINT call it)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, self.stop)
        self.report(self.scanner.scan(self.roots, reanalyse=reanalyse))
        self.observer = self._start_observer()
        try:
            while not self.stopping.wait(tick):
                self._flush()
        finally:
            self.observer.stop()
            self.observer.join(timeout=10)
        self._flush()

    def _start_observer(self) -> BaseObserver:
        handler = _Handler(self.pending)
        network = [r for r in self.roots if filesystem_type(r) in NETWORK_FILESYSTEMS]
        if self.poll or network:
            if network:
                log.info("polling %s: network filesystems send no inotify events", network)
            return self._schedule(PollingObserver(timeout=max(self.settle, 1.0)), handler)
        try:
            return self._schedule(Observer(), handler)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            log.warning(
                "inotify cannot watch everything (%s; raise fs.inotify.max_user_watches); "
                "falling back to polling",
                exc.strerror,
            )
            return self._schedule(PollingObserver(timeout=max(self.settle, 1.0)), handler)

    def _schedule(self, observer: BaseObserver, handler: _Handler) -> BaseObserver:
        for root in self.roots:
            observer.schedule(handler, str(root), recursive=True)
        observer.start()
        return observer

    def _flush(self) -> None:
        """Apply moves, then process what settled and what vanished, as one batch."""
        if not all(root.exists() for root in self.roots):
            missing = [str(r) for r in self.roots if not r.exists()]
            log.warning("watch root gone (unmounted?): %s; waiting for it", ", ".join(missing))
            with self.pending.lock:
                self.pending.gone.clear()
            return
        now = time.monotonic()
        ready: list[Path] = []
        with self.pending.lock:
            moves, self.pending.moves = self.pending.moves, []
            for path, (since, stat) in list(self.pending.changed.items()):
                current = _stat(path)
                if current is None:
                    self.pending.changed.pop(path)
                    continue
                if current != stat:
                    self.pending.changed[path] = (now, current)
                elif now - since >= self.settle:
                    ready.append(path)
                    self.pending.changed.pop(path)
            gone = sorted(p for p in self.pending.gone if not p.exists())
            self.pending.gone.clear()
        for src, dest in moves:
            self.scanner.move(src, dest)
        if ready or gone:
            self.report(self.scanner.update(ready, gone))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
