"""The scan: discovery -> identity and EXIF -> decoding -> models -> index -> sidecars.

Data flows one way. Work happens in batches: hashing, EXIF and decoding in a thread pool (Pillow,
hashlib and file reads release the GIL), the models once per batch, one index transaction per
batch. A photo whose content is already analysed by the current model versions (unchanged, moved,
renamed, copied) never reaches the models, and torch is imported only when some photo does; a photo
analysed by other versions (a retrained captioner, a new beam size) is analysed again, its file
unchanged or not, and ``reanalyse`` does so for every photo. When the models run on CUDA, the
pool only reads JPEGs and the GPU decodes them (``photobatch.library.gpu_decoding``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from photobatch.core.config import Config
from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRecord
from photobatch.library.discovery import walk
from photobatch.library.index import Index
from photobatch.library.schema import now
from photobatch.library.sidecars import SidecarSync
from photobatch.scan.summary import ScanError, ScanSummary
from photobatch.scan.work import JPEG_SUFFIXES, Batch, Item, decode, identify, read_for_gpu

if TYPE_CHECKING:
    from photobatch.library.gpu_decoding import GpuJpegDecoder
    from photobatch.models.stack import Analyzer

# Batches decoded ahead while the models load (32 photos of 224x224 float32 are 19 MB).
LOAD_AHEAD = 4


class Scanner:
    """Runs scans against one index; owns the lazily loaded model stack."""

    def __init__(
        self,
        config: Config,
        index: Index,
        *,
        sidecars: bool = True,
        device: str | None = None,
        progress: bool = True,
        analyzer_factory: Callable[[], Analyzer] | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.sidecars = SidecarSync(config.sidecars) if sidecars else None
        self.device = device or config.device
        self.progress = progress
        self._analyzer_factory = analyzer_factory
        self._analyzer: Analyzer | None = None
        self._analyzer_lock = threading.Lock()
        self._warm_up: threading.Thread | None = None
        self._on_gpu = False  # set once the models are loaded on CUDA
        self._gpu_jpeg: GpuJpegDecoder | None = None

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

    def _start_warm_up(self) -> None:
        """Import torch and load the models in the background, once a batch needs them.

        Imports and model loading take about 3 s on a laptop CPU; started while the pool decodes
        the first batch, they are ready when that batch is, instead of adding to the scan.
        """
        if self._warm_up is None:
            self._warm_up = threading.Thread(
                target=self._load_models, name="photobatch-model-load", daemon=True
            )
            self._warm_up.start()

    def _load_models(self) -> None:
        """Load the models; on CUDA, also the GPU JPEG decoder (when torchvision can decode)."""
        analyzer = self.analyzer
        try:
            analyzer.load()
        except Exception:
            # Not reported from this thread: the batch's own call to the models loads again and
            # raises the same error where the scan reports it.
            return
        if analyzer.device.type == "cuda":
            from photobatch.library.gpu_decoding import gpu_jpeg_decoder

            self._gpu_jpeg = gpu_jpeg_decoder(analyzer.device)
            self._on_gpu = True

    def scan(self, roots: list[Path], *, reanalyse: bool = False) -> ScanSummary:
        """Bring the index (and sidecars) up to date with the photos below ``roots``; with
        ``reanalyse``, run the models again on every photo below them."""
        started, clock = now(), time.monotonic()
        roots = [r.expanduser().absolute() for r in roots]
        for root in roots:
            if not root.exists():
                raise ScanError(f"{root}: no such file or folder (nothing was marked missing)")
        summary = ScanSummary()

        def unreadable(path: Path, exc: OSError) -> None:
            summary.problems.append(f"{path}: cannot read: {exc.strerror or exc}")

        found = list(walk(roots, on_error=unreadable))
        known = self.index.known_files()
        self._run(found, known, summary, reanalyse=reanalyse)
        self._refresh_personal(roots, summary)
        seen = {str(f.path) for f in found}
        gone = [
            path
            for path, (_, _, status, _) in known.items()
            if status != "missing" and path not in seen and _is_below(path, roots)
        ]
        summary.missing += self.index.mark_missing(gone)
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, roots, summary.as_dict())
        return summary

    def update(self, changed: list[Path], gone: list[Path]) -> ScanSummary:
        """Process just these files (the watcher's settled batch) and mark ``gone`` missing."""
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
        summary.missing += self.index.mark_missing(
            p for p, row in known.items() if row[2] != "missing" and _is_below(p, vanished)
        )
        summary.seconds = time.monotonic() - clock
        self.index.log_scan(started, changed + gone, summary.as_dict())
        return summary

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
                [p for ps in paths for p in ps if _is_below(str(p), roots)], summary
            )

    def _rewrite_sidecars(self, paths: list[Path], summary: ScanSummary) -> None:
        """Bring the sidecars of these indexed photos up to date with their records."""
        assert self.sidecars is not None
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
    ) -> None:
        """Gate, then process in batches, every file of ``found`` that is new or changed, or
        whose results came from other model versions (every file, with ``reanalyse``)."""
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

        with (
            ThreadPoolExecutor(max(1, self.config.workers)) as pool,
            tqdm(
                total=len(todo),
                unit="photo",
                disable=not (self.progress and sys.stderr.isatty()),
                file=sys.stderr,
            ) as bar,
        ):
            # The pool decodes ahead while the models work: one batch ahead once they run, up
            # to LOAD_AHEAD batches while they are still loading, so the seconds of importing
            # torch and loading weights are spent decoding instead of waiting.
            pending: deque[Batch] = deque()
            for items in self._batches(todo):
                pending.append(self._prepare(items, pool, summary, None if reanalyse else models))
                ahead = 1 if self._models_ready() else LOAD_AHEAD
                while len(pending) > ahead:
                    self._finish_next(pending, summary, bar)
            while pending:
                self._finish_next(pending, summary, bar)
        if restore:
            self._rewrite_sidecars(restore, summary)

    def _models_ready(self) -> bool:
        return self._warm_up is None or not self._warm_up.is_alive()

    def _batches(self, todo: list[Item]) -> Iterator[list[Item]]:
        """``todo`` in batches: the CPU's size until the models are loaded on a GPU, then its."""
        rest = iter(todo)
        while True:
            size = self.config.gpu_batch_size if self._on_gpu else self.config.batch_size
            batch = list(islice(rest, max(1, size)))
            if not batch:
                return
            yield batch

    def _finish_next(self, pending: deque[Batch], summary: ScanSummary, bar: tqdm) -> None:
        batch = pending.popleft()
        self._finish(batch, summary)
        bar.update(len(batch.items))

    def _prepare(
        self,
        items: list[Item],
        pool: ThreadPoolExecutor,
        summary: ScanSummary,
        models: str | None,
    ) -> Batch:
        """Hash and read EXIF (waiting for it), then start decoding what the models need: the
        photos without results of these ``models`` (every photo when ``models`` is None)."""
        list(pool.map(identify, items))
        ok = [item for item in items if item.error is None]
        hashes = (item.sha256 for item in ok if item.sha256)
        done = set() if models is None else self.index.analyzed(hashes, models)
        first: dict[str, Item] = {}
        for item in ok:
            assert item.sha256 is not None
            if item.sha256 in done:
                summary.reused += item.is_new
            else:
                first.setdefault(item.sha256, item)
        to_decode = list(first.values())
        if to_decode:
            self._start_warm_up()
        # JPEGs go to the GPU decoder once the models run there; until then (and for every
        # other format) the pool decodes with Pillow.
        gpu = self._gpu_jpeg is not None and self._models_ready()

        def step(item: Item) -> Callable[[Item], None]:
            on_gpu = gpu and item.found.path.suffix.lower() in JPEG_SUFFIXES
            return read_for_gpu if on_gpu else decode

        return Batch(items, to_decode, [pool.submit(step(item), item) for item in to_decode])

    def _finish(self, pending: Batch, summary: ScanSummary) -> None:
        """Run the models on a prepared batch, write its sidecars, then commit it."""
        for future in pending.decoding:
            future.result()
        batch, to_decode = pending.items, pending.to_decode
        self._decode_on_gpu([item for item in to_decode if item.jpeg is not None])
        decoded = [item for item in to_decode if item.image is not None]
        analyses: list[Analysis] = []
        if decoded:
            from photobatch.models.captioner import CheckpointError

            try:
                analyses = self.analyzer.analyze(
                    [item.sha256 for item in decoded],  # type: ignore[misc]
                    [item.image for item in decoded],  # type: ignore[misc]
                )
            except CheckpointError as exc:  # the models cannot run: no photo can be analysed
                raise ScanError(str(exc)) from exc
            summary.analyzed += len(analyses)
        failed = {item.sha256: item.error for item in to_decode if item.error}
        for item in batch:
            item.image = None
            if item.error is None and item.sha256 in failed:
                item.error = f"{item.found.path}: same content as {failed[item.sha256]}"
        # Sidecars first, the index commit last: a scan killed in between redoes the batch next
        # time, while a committed photo whose sidecar was never written would stay without one.
        if self.sidecars is not None:
            self._write_sidecars(batch, {a.sha256: a for a in analyses}, summary)
        rows = []
        for item in batch:
            status = "error" if item.error else "ok"
            if item.error and not os.path.lexists(item.found.path):
                status = "missing"  # vanished mid-scan: not unreadable, just gone
            elif item.error:
                summary.problems.append(item.error)
            summary.errors += status == "error"
            summary.missing += status == "missing"
            rows.append((item.found, item.metadata, item.sha256, status, item.error))
        self.index.write_batch(rows, analyses)

    def _decode_on_gpu(self, items: list[Item]) -> None:
        """Decode JPEGs read for the GPU there; what nvJPEG cannot decode goes through Pillow."""
        if not items:
            return
        assert self._gpu_jpeg is not None
        orientations = [(item.metadata or PhotoMetadata()).orientation for item in items]
        blobs = [item.jpeg for item in items if item.jpeg is not None]
        images = self._gpu_jpeg.decode(blobs, orientations)
        for item, image in zip(items, images, strict=True):
            item.jpeg = None
            if image is None:
                decode(item)
            else:
                item.image = image

    def _write_sidecars(
        self, batch: list[Item], fresh: dict[str, Analysis], summary: ScanSummary
    ) -> None:
        """Write each photo's sidecars (a new path's comes along from where its content was, if
        that file is gone: a move); a photo whose sidecar failed is retried next scan."""
        assert self.sidecars is not None
        origins = self.index.paths_with(
            item.sha256 for item in batch if item.is_new and item.error is None and item.sha256
        )
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


def _is_below(path: str, roots: list[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)
