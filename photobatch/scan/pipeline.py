"""The scan, wired: ``Scanner`` runs the stages of ``scan.stages`` in their order, for a scan of
folders and for watch's batches of settled files, against one index.

Data flows one way. The stages that need the models run through an engine (``scan.local`` in
this process, ``scan.cluster`` on a Ray cluster); the others run here, on the machine that owns
the index. A photo whose content is already analysed by the current model versions (unchanged,
moved, renamed, copied) never reaches the models, and torch is imported only when some photo
does; a photo analysed by other versions (a retrained captioner, a new beam size) is analysed
again, its file unchanged or not, and ``reanalyse`` does so for every photo.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tqdm import tqdm

from photobatch.core.config import Config
from photobatch.core.records import IndexedFile
from photobatch.library.index import Index
from photobatch.library.schema import now
from photobatch.library.sidecars import SidecarSync
from photobatch.scan import stages
from photobatch.scan.hooks import analysed, committed
from photobatch.scan.local import LocalEngine
from photobatch.scan.stages import Batch, Discovery, Engine, Reuse
from photobatch.scan.summary import ScanSummary

if TYPE_CHECKING:
    from photobatch.models.stack import Analyzer


class Scanner:
    """Runs scans against one index; owns the lazily loaded model stack and the engine that runs
    the stages needing the models (``local``: this process; ``ray``: a Ray cluster, see
    ``scan.cluster``)."""

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
        roots = stages.checked_roots(roots)
        summary = ScanSummary()
        discovery = stages.discover(roots, summary)
        known = self.index.known_files()
        self._run(discovery, known, summary, reanalyse=reanalyse, stop=stop)
        if not summary.stopped:
            stages.refresh_personal(
                self.index, self.analyzer, self.sidecars, roots, summary, self.config.batch_size
            )
        gone = stages.gone(known, discovery, roots, summary)
        stages.mark_missing(self.index, self.sidecars, gone, summary)
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, roots, summary.as_dict())
        return summary

    def update(self, changed: list[Path], gone: list[Path], roots: list[Path]) -> ScanSummary:
        """Process just these files (the watcher's settled batch of the folders ``roots``) and
        mark ``gone`` missing."""
        started, clock = now(), time.monotonic()
        summary = ScanSummary()
        discovery = stages.discover_settled(changed, gone)
        known = self.index.known_files()
        self._run(discovery, known, summary)
        vanished = [
            path
            for path, row in known.items()
            if row.status != "missing" and stages.is_below(path, discovery.vanished)
        ]
        stages.mark_missing(self.index, self.sidecars, vanished, summary)
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, roots, summary.as_dict())
        return summary

    def move(self, src: Path, dest: Path) -> int:
        """Follow a file or folder that was moved: paths change, results stay, no model work,
        and the sidecars photobatch wrote go along."""
        moved = self.index.move(src, dest)
        if self.sidecars is not None:
            with stages.sidecar_lock(self.index, self.sidecars):
                for path in map(Path, moved):
                    self.sidecars.move(src / path.relative_to(dest), path)
                    record = self.index.record(path)
                    if record is not None and record.status == "ok":
                        self.sidecars.write(record)
        return len(moved)

    def _run(
        self,
        discovery: Discovery,
        known: dict[str, IndexedFile],
        summary: ScanSummary,
        *,
        reanalyse: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        """Stages 2 to 8 over what stage 1 found, until ``stop`` is set; with ``reanalyse``,
        every photo found goes through the models."""
        models = self.analyzer.models
        stale = None if reanalyse else self.index.stale_analyses(models)
        todo = stages.skip_unchanged(discovery.found, known, stale, self.sidecars, summary)
        if todo.items:
            reuse = Reuse(self.index, None if reanalyse else models, summary)
            bar = tqdm(
                total=len(todo.items),
                unit="photo",
                disable=not (self.progress and sys.stderr.isatty()),
                file=sys.stderr,
            )
            with bar:
                for batch in stages.through_engine(self.engine, todo.items, reuse.pick):
                    analysed(batch, summary)  # the after-analysis plugins
                    stages.personalise(self.analyzer, batch)
                    reuse.settle(batch)
                    self.commit(batch, summary)
                    reuse.release(batch)
                    bar.update(len(batch.items))
                    if stop is not None and stop.is_set():
                        summary.stopped = True
                        break
        if todo.restore and self.sidecars is not None and not summary.stopped:
            stages.rewrite_sidecars(self.index, self.sidecars, todo.restore, summary)

    def commit(self, batch: Batch, summary: ScanSummary) -> None:
        """The sidecars, then the index commit, of a batch back from the engine: the driver's
        share of every photo, whichever engine analysed it; then the after-commit plugins."""
        # Sidecars first, the index commit last: a scan killed in between redoes the batch next
        # time, while a committed photo whose sidecar was never written would stay without one.
        with stages.sidecar_lock(self.index, self.sidecars):
            stages.write_sidecars(self.index, self.sidecars, batch, summary)
            stages.commit(self.index, batch, summary)
        committed(self.index, batch, summary)
