"""``photobatch watch``: keep the index current while cameras, phones and sync tools write.

Filesystem events are collected rather than acted on, from before the catch-up scan on, so a photo
that arrives during it (hours, on a first scan) waits in the queue instead of being missed. A
photo is processed only once its size and mtime have stayed the same for the settle time (a file
still being copied keeps changing), and everything that settled together goes through the models
as one batch. Moves update paths in the index without touching the models. A vanished watch root
(an unmounted drive) pauses the watch of that root instead of marking a library missing; when it
comes back (a new folder, or the drive mounted again) it is watched anew and caught up with. If
inotify cannot watch the tree (the per-user watch limit, network filesystems) the watcher falls
back to polling.
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
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from photobatch.library.discovery import is_image_name
from photobatch.scan.pipeline import Scanner
from photobatch.scan.stages import checked_roots, is_below
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
        if _photo(path):
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
        if not (event.is_directory or _photo(path)):
            return  # a sidecar's temporary file, say: nothing in the index is below it
        with self.pending.lock:
            self.pending.changed.pop(path, None)
            self.pending.gone.add(path)

    def on_moved(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        dest = Path(os.fsdecode(event.dest_path))
        if not (event.is_directory or _photo(src) or _photo(dest)):
            return  # every sidecar written is a rename: not worth an index query each
        with self.pending.lock:
            self.pending.moves.append((src, dest))
            if src in self.pending.changed:  # moved before it settled: settle it at its new name
                self.pending.changed.pop(src)
                self.pending.changed[dest] = (time.monotonic(), None)


def _photo(path: Path) -> bool:
    """A photo's name, outside hidden folders."""
    return is_image_name(path.name) and not any(p.startswith(".") for p in path.parts[1:])


@dataclass
class _Root:
    """A watched folder and the watch on it, armed while the folder is the one first seen."""

    path: Path
    mount: bool  # a mount point when armed: unmounted, it is gone even if its folder stays
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when armed; None: gone
    watch: ObservedWatch | None = None

    def present(self) -> tuple[int, int] | None:
        """The folder's identity now; None while it is gone (or its drive unmounted)."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        if self.mount and not os.path.ismount(self.path):
            return None
        return (st.st_dev, st.st_ino)


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
        self.roots = [_Root(path, os.path.ismount(path)) for path in checked_roots(roots)]
        self.settle = settle
        self.poll = poll
        self.report = report or (lambda summary: log.info(summary.line()))
        self.pending = _Pending()
        self.stopping = threading.Event()
        self.observer: BaseObserver | None = None
        self._handler = _Handler(self.pending)

    def stop(self, *_: object) -> None:
        """Ask the loop to finish the batch in hand and return (signal handler too)."""
        self.stopping.set()

    def run(self, *, tick: float = 0.5, reanalyse: bool = False) -> None:
        """Catch up (analysing every photo again with ``reanalyse``), then watch until ``stop()``
        (SIGTERM and SIGINT call it; during the catch-up too, which then ends after its batch
        in hand). Events are collected from before the catch-up on."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, self.stop)
        self.observer = self._start_observer()
        try:
            self._catch_up([root.path for root in self.roots], reanalyse=reanalyse)
            while not self.stopping.wait(tick):
                self._flush()
        finally:
            self.observer.stop()
            self.observer.join(timeout=10)

    def _catch_up(self, roots: list[Path], *, reanalyse: bool = False) -> None:
        summary = self.scanner.scan(roots, reanalyse=reanalyse, stop=self.stopping)
        self.report(summary)

    def _start_observer(self) -> BaseObserver:
        network = [r.path for r in self.roots if filesystem_type(r.path) in NETWORK_FILESYSTEMS]
        if self.poll or network:
            if network:
                log.info("polling %s: network filesystems send no inotify events", network)
            return self._schedule(PollingObserver(timeout=max(self.settle, 1.0)))
        try:
            return self._schedule(Observer())
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            log.warning(
                "inotify cannot watch everything (%s; raise fs.inotify.max_user_watches); "
                "falling back to polling",
                exc.strerror,
            )
            return self._schedule(PollingObserver(timeout=max(self.settle, 1.0)))

    def _schedule(self, observer: BaseObserver) -> BaseObserver:
        for root in self.roots:
            root.identity = root.present()
            root.watch = observer.schedule(self._handler, str(root.path), recursive=True)
        observer.start()
        return observer

    def _rearm(self, root: _Root, identity: tuple[int, int]) -> None:
        """Watch ``root`` anew (the old watch died with the folder it watched) and catch up with
        what changed in it while it was gone."""
        assert self.observer is not None
        if root.watch is not None:
            self.observer.unschedule(root.watch)
        root.watch = self.observer.schedule(self._handler, str(root.path), recursive=True)
        root.identity = identity
        log.info("watch root back: %s; catching up", root.path)
        self._catch_up([root.path])

    def _flush(self) -> None:
        """Follow roots that went or came back; apply moves, then process what settled and what
        vanished, as one batch. Nothing below a root that is gone is touched."""
        away = []
        for root in self.roots:
            identity = root.present()
            if identity is None:
                if root.identity is not None:
                    log.warning("watch root gone (unmounted?): %s; waiting for it", root.path)
                    root.identity = None
                away.append(str(root.path))
            elif identity != root.identity:
                self._rearm(root, identity)
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
            gone = sorted(
                p for p in self.pending.gone if not p.exists() and not is_below(str(p), away)
            )
            self.pending.gone.clear()
        for src, dest in moves:
            self.scanner.move(src, dest)
        if ready or gone:
            self.report(self.scanner.update(ready, gone, [root.path for root in self.roots]))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
