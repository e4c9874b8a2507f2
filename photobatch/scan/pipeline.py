"""The scan: discovery -> identity and EXIF -> decoding -> models -> index -> sidecars.

Data flows one way. Work happens in batches: an engine hashes, reads EXIF, decodes and runs the
models (``scan.local`` in this process, ``scan.cluster`` on a Ray cluster); this module, on the
machine that owns the index, decides what needs the models, writes the sidecars and commits one
index transaction per batch. A photo whose content is already analysed by the current model
versions (unchanged, moved, renamed, copied) never reaches the models, and torch is imported only
when some photo does; a photo analysed by other versions (a retrained captioner, a new beam size)
is analysed again, its file unchanged or not, and ``reanalyse`` does so for every photo.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from tqdm import tqdm

from photobatch.core.config import Config
from photobatch.core.lock import SidecarLock
from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRecord
from photobatch.library.discovery import is_image_name, walk
from photobatch.library.index import Index
from photobatch.library.schema import now
from photobatch.library.sidecars import SidecarSync
from photobatch.scan.local import LocalEngine
from photobatch.scan.summary import ScanError, ScanSummary
from photobatch.scan.work import Item, Pick, Processed

if TYPE_CHECKING:
    from photobatch.models.stack import Analyzer


class Engine(Protocol):
    """Where a scan's heavy work runs: it identifies every item and analyses those ``pick``
    chooses, and yields the batches in order, each once, as they finish."""

    def process(self, todo: list[Item], pick: Pick) -> Iterator[Processed]: ...

    def close(self) -> None: ...


class Scanner:
    """Runs scans against one index; owns the lazily loaded model stack and the engine that does
    the heavy work (``local``: this process; ``ray``: a Ray cluster, see ``scan.cluster``)."""

    def __init__(
        self,
        config: Config,
        index: Index,
        *,
        sidecars: bool = True,
        device: str | None = None,
        progress: bool = True,
        analyzer_factory: Callable[[], Analyzer] | None = None,
        engine: Literal["local", "ray"] | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.sidecars = SidecarSync(config.sidecars) if sidecars else None
        self.device = device or config.device
        self.progress = progress
        self.engine_name = engine or config.engine
        self._analyzer_factory = analyzer_factory
        self._analyzer: Analyzer | None = None
        self._analyzer_lock = threading.Lock()
        self._engine: Engine | None = None

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the engine (a Ray instance this scanner started ends here)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def analyzer(self) -> Analyzer:
        with self._analyzer_lock:
            if self._analyzer is None:
                if self._analyzer_factory is not None:
                    self._analyzer = self._analyzer_factory()
                else:
                    from photobatch.models.stack import model_set

                    self._analyzer = model_set(self.config, self.device)
            return self._analyzer

    @property
    def engine(self) -> Engine:
        """The engine, started on first use: a scan with nothing to analyse never starts Ray."""
        if self._engine is None:
            if self.engine_name == "ray":
                from photobatch.scan.cluster import RayEngine

                self._engine = RayEngine(self.config, self.analyzer, self.device)
            else:
                self._engine = LocalEngine(self.config, lambda: self.analyzer)
        return self._engine

    def scan(
        self, roots: list[Path], *, reanalyse: bool = False, stop: threading.Event | None = None
    ) -> ScanSummary:
        """Bring the index (and sidecars) up to date with the photos below ``roots``; with
        ``reanalyse``, run the models again on every photo below them. Once ``stop`` is set, the
        batch in hand is committed and the rest left to the next scan."""
        started, clock = now(), time.monotonic()
        roots = checked_roots(roots)
        summary = ScanSummary()
        unreadable: list[Path] = []

        def cannot_read(path: Path, exc: OSError) -> None:
            summary.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            unreadable.append(path)

        found = list(walk(roots, on_error=cannot_read))
        known = self.index.known_files()
        self._run(found, known, summary, reanalyse=reanalyse, stop=stop)
        if not summary.stopped:
            self._refresh_personal(roots, summary)
        seen = {str(f.path) for f in found}
        # What a folder that cannot be read holds is unreadable, not gone: its indexed photos
        # count as unreadable (a folder with none of them, as one).
        present = [p for p, row in known.items() if row[2] != "missing"]
        for folder in unreadable:
            summary.errors += max(1, sum(is_below(p, [folder]) for p in present))
        gone = [
            path
            for path, (_, _, status, _) in known.items()
            if status != "missing"
            and path not in seen
            and is_below(path, roots)
            and not is_below(path, unreadable)
        ]
        self._mark_missing(gone, summary)
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, roots, summary.as_dict())
        return summary

    def update(self, changed: list[Path], gone: list[Path], roots: list[Path]) -> ScanSummary:
        """Process just these files (the watcher's settled batch of the folders ``roots``) and
        mark ``gone`` missing."""
        started, clock = now(), time.monotonic()
        summary = ScanSummary()
        found, vanished = [], list(gone)
        for path in changed:
            try:
                st = path.stat()
            except OSError:
                vanished.append(path)
                continue
            found.append(FoundFile(path, st.st_size, st.st_mtime_ns))
        known = self.index.known_files()
        self._run(found, known, summary)
        self._mark_missing(
            [p for p, row in known.items() if row[2] != "missing" and is_below(p, vanished)],
            summary,
        )
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, roots, summary.as_dict())
        return summary

    def _mark_missing(self, paths: list[str], summary: ScanSummary) -> None:
        """Mark photos that are gone missing (their results are kept) and remove the sidecars
        photobatch alone wrote for them."""
        summary.missing += self.index.mark_missing(paths)
        if self.sidecars is None:
            return
        for path in paths:
            record = self.index.record(Path(path))
            if record is not None:
                problems = self.sidecars.forget(record)
                summary.sidecar_problems += len(problems)
                summary.problems.extend(problems)

    def _refresh_personal(self, roots: list[Path], summary: ScanSummary) -> None:
        """Re-rank photos analysed before the personal head was (re)trained or removed.

        Costs one SQL query when nothing changed; torch is imported only when something did.
        """
        stale = list(self.index.unpersonalized(self.analyzer.personal.id))
        if not stale:
            return
        updated = self.analyzer.repersonalize(stale)
        self.index.set_personal(updated)
        summary.personalized = len(updated)
        if self.sidecars is not None:
            paths = self.index.paths_with(a.sha256 for a in updated).values()
            self._rewrite_sidecars(
                [p for ps in paths for p in ps if is_below(str(p), roots)], summary
            )

    def _sidecar_lock(self) -> AbstractContextManager[object]:
        """Held from reading a photo's record to committing it whenever sidecars are written,
        so ``photobatch review`` and a scan never write a sidecar from each other's old view."""
        return SidecarLock(self.config.index) if self.sidecars is not None else nullcontext()

    def _rewrite_sidecars(self, paths: list[Path], summary: ScanSummary) -> None:
        """Bring the sidecars of these indexed photos up to date with their records."""
        assert self.sidecars is not None
        with self._sidecar_lock():
            for path in paths:
                record = self.index.record(path)
                if record is not None and record.status == "ok":
                    problems = self.sidecars.write(record)
                    summary.sidecar_problems += len(problems)
                    summary.problems.extend(problems)

    def move(self, src: Path, dest: Path) -> int:
        """Follow a file or folder that was moved: paths change, results stay, no model work,
        and the sidecars photobatch wrote go along."""
        moved = self.index.move(src, dest)
        if self.sidecars is not None:
            with self._sidecar_lock():
                for path in map(Path, moved):
                    self.sidecars.move(src / path.relative_to(dest), path)
                    record = self.index.record(path)
                    if record is not None and record.status == "ok":
                        self.sidecars.write(record)
        return len(moved)

    def _run(
        self,
        found: list[FoundFile],
        known: dict[str, tuple],
        summary: ScanSummary,
        *,
        reanalyse: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        """Gate, then process in batches, every file of ``found`` that is new or changed, or
        whose results came from other model versions (every file, with ``reanalyse``), until
        ``stop`` is set."""
        summary.found += len(found)
        models = self.analyzer.models
        stale = set() if reanalyse else self.index.stale_analyses(models)
        todo: list[Item] = []
        restore: list[Path] = []  # unchanged photos whose sidecar was deleted
        for f in found:
            old = known.get(str(f.path))
            if old is None:
                summary.new += 1
            elif old[0] == f.size and old[1] == f.mtime_ns and old[2] != "missing":
                if not reanalyse and old[3] not in stale:
                    summary.unchanged += 1
                    summary.still_unreadable += old[2] == "error"
                    if old[2] == "ok" and self.sidecars and self.sidecars.missing(f.path):
                        restore.append(f.path)
                    continue
                summary.reanalysed += 1
            else:
                summary.changed += 1
            todo.append(Item(f, is_new=old is None))

        if todo:
            self._process(todo, summary, None if reanalyse else models, stop)
        if restore and not summary.stopped:
            self._rewrite_sidecars(restore, summary)

    def _process(
        self,
        todo: list[Item],
        summary: ScanSummary,
        models: str | None,
        stop: threading.Event | None,
    ) -> None:
        """Send ``todo`` through the engine and commit each batch as it comes back, until
        ``stop`` is set."""
        # Content on its way through the engine: the item that carries it. A copy in a later
        # batch is not analysed again: batches are committed in order, so the result is in the
        # index by the time the copy's batch is committed.
        claimed: dict[str, Item] = {}

        def pick(items: list[Item]) -> list[Item]:
            """The identified items the models must see: one per content without results of
            these ``models`` (every content when ``models`` is None)."""
            ok = [item for item in items if item.error is None]
            hashes = (item.sha256 for item in ok if item.sha256)
            done = set() if models is None else self.index.analyzed(hashes, models)
            chosen = []
            for item in ok:
                assert item.sha256 is not None
                if item.sha256 in done:
                    summary.reused += item.is_new
                elif item.sha256 not in claimed:
                    claimed[item.sha256] = item
                    chosen.append(item)
            return chosen

        with tqdm(
            total=len(todo),
            unit="photo",
            disable=not (self.progress and sys.stderr.isatty()),
            file=sys.stderr,
        ) as bar:
            for batch in self.engine.process(todo, pick):
                self.commit(batch, summary, claimed)
                for item in batch.analysed:  # in the index now; a failure stays its copies'
                    if item.error is None:
                        del claimed[item.sha256]  # type: ignore[arg-type]
                bar.update(len(batch.items))
                if stop is not None and stop.is_set():
                    summary.stopped = True
                    break

    def commit(
        self, batch: Processed, summary: ScanSummary, claimed: dict[str, Item] | None = None
    ) -> None:
        """Write a processed batch's sidecars, then commit it to the index: the driver's share
        of every photo, whichever engine analysed it. ``claimed``: the items analysed for each
        content in flight (default: this batch's), whose failure is their copies' too."""
        summary.analyzed += len(batch.analyses)
        if claimed is None:
            claimed = {item.sha256: item for item in batch.analysed if item.sha256}
        for item in batch.items:
            first = claimed.get(item.sha256) if item.sha256 else None
            if item.error is None and first is not None and first.error:
                item.error = f"{item.found.path}: same content as {first.error}"
        # Sidecars first, the index commit last: a scan killed in between redoes the batch next
        # time, while a committed photo whose sidecar was never written would stay without one.
        with self._sidecar_lock():
            self.index.carry_reviews(  # a photo edited in place keeps its review
                [(i.found.path, i.sha256) for i in batch.items if i.sha256 and i.error is None]
            )
            if self.sidecars is not None:
                self._write_sidecars(batch.items, {a.sha256: a for a in batch.analyses}, summary)
            self._commit_rows(batch, summary)

    def _commit_rows(self, batch: Processed, summary: ScanSummary) -> None:
        rows = []
        for item in batch.items:
            status = "error" if item.error else "ok"
            if item.error and not os.path.lexists(item.found.path):
                status = "missing"  # vanished mid-scan: not unreadable, just gone
            elif item.error:
                summary.problems.append(item.error)
            summary.errors += status == "error"
            summary.missing += status == "missing"
            rows.append((item.found, item.metadata, item.sha256, status, item.error))
        self.index.write_batch(rows, batch.analyses)

    def _write_sidecars(
        self, batch: list[Item], fresh: dict[str, Analysis], summary: ScanSummary
    ) -> None:
        """Write each photo's sidecars (a new path's comes along from where its content was, if
        that file is gone: a move); a photo whose sidecar failed is retried next scan."""
        assert self.sidecars is not None
        origins = self.index.paths_with(
            item.sha256 for item in batch if item.is_new and item.error is None and item.sha256
        )
        reviews = self.index.reviews(item.sha256 for item in batch if item.sha256)
        for item in batch:
            if item.error is not None or item.sha256 is None:
                continue
            was = origins.get(item.sha256, []) if item.is_new else []
            gone = [path for path in was if not os.path.lexists(path)]
            if gone:
                origins[item.sha256].remove(gone[0])
                moving = self.sidecars.move(gone[0], item.found.path)
                summary.sidecar_problems += len(moving)
                summary.problems.extend(moving)
            record = PhotoRecord(
                path=item.found.path,
                sha256=item.sha256,
                status="ok",
                metadata=item.metadata or PhotoMetadata(),
                analysis=fresh.get(item.sha256) or self.index.analysis(item.sha256),
                review=reviews.get(item.sha256),
            )
            problems = self.sidecars.write(record)
            if problems:
                summary.sidecar_problems += len(problems)
                summary.problems.extend(problems)
                metadata = item.metadata or PhotoMetadata()
                notes = [metadata.warning, *problems]
                item.metadata = replace(metadata, warning="; ".join(n for n in notes if n))
                # An impossible mtime makes the next scan's change gate look at it again.
                item.found = replace(item.found, mtime_ns=-1)


def checked_roots(roots: list[Path]) -> list[Path]:
    """``roots`` as absolute paths, once each is known to be a folder or a photo."""
    roots = [r.expanduser().absolute() for r in roots]
    for root in roots:
        if not root.exists():
            raise ScanError(f"{root}: no such file or folder (nothing was marked missing)")
        if not root.is_dir() and not is_image_name(root.name):
            raise ScanError(
                f"{root}: not a photo (by its name) nor a folder: photobatch scans photos (.jpg, "
                ".heic, a camera's RAW...) and folders of them"
            )
    return roots


def is_below(path: str, roots: list[Path] | list[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)
