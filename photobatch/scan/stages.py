"""The scan's stages, in order, over one record per photo (``Item``) that each stage fills in.

1. **discover**: walk the folders for image files (``photobatch watch``: the files that settled),
   with their size and mtime; a folder that cannot be read is a problem, not a loss.
2. **skip unchanged**: compare each file with what the index recorded of its path; an unchanged
   one whose results came from the current model versions goes no further (nor does torch get
   imported), and its sidecar is written again if the user deleted it.
3. **hash and identify**: the content hash and the EXIF of each new or changed file; then, on the
   driver, the photos whose content the index already has results of these model versions for
   (a move, a rename, a copy), or an earlier batch is analysing, go no further than the commit.
4. **decode**: the other photos are decoded and preprocessed for the encoder.
5. **analyse**: the image models caption them and suggest hashtags.
   *Plugin event*: ``photobatch_after_analysis`` adds, drops or re-scores hashtags and labels.
6. **personalise**: the user's personal head ranks the hashtags and drafts a post.
7. **sidecars**: a photo edited in place keeps its review; then each photo's sidecars are
   written (a moved photo's come along from where it was).
8. **commit**: one index transaction per batch. *Plugin event*: ``photobatch_after_commit``.

After the batches: photos analysed before the personal head or the after-analysis plugins changed
are re-ranked (``refresh_personal``), and indexed photos no longer found are marked missing,
their results kept (``mark_missing``).

Where each stage runs. Stages 1, 2 and 6 to 8 run on the driver, the machine that owns the index
(its one writer) and the sidecar lock. Stages 3 to 5 run batch by batch through an ``Engine``, in
the order ``through_engine`` holds; the engine decides only where each runs:

- 3. hash and identify: the local engine's thread pool (``scan.local``), or Ray CPU tasks
  (``scan.cluster``); the choice of what the models must see (``Reuse``) is the driver's.
- 4. decode: the thread pool (Pillow; JPEGs on the GPU when the models run on CUDA), or Ray CPU
  tasks.
- 5. analyse: this process, or a Ray model actor (one per GPU, else one per node).

``scan.pipeline.Scanner`` wires the stages together for a scan and for watch's updates.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from photobatch.core.hooks import analysis_plugins
from photobatch.core.lock import SidecarLock
from photobatch.core.records import (
    Analysis,
    FoundFile,
    IndexedFile,
    PhotoMetadata,
    PhotoRecord,
    PhotoRow,
)
from photobatch.library.discovery import is_image_name, read_problem, sha256_file, walk
from photobatch.library.index import Index
from photobatch.library.metadata import read_metadata
from photobatch.library.sidecars import SidecarSync
from photobatch.scan.hooks import reapplied
from photobatch.scan.summary import ScanError, ScanSummary

if TYPE_CHECKING:
    import torch

    from photobatch.models.stack import Analyzer


@dataclass
class Item:
    """One new or changed photo on its way through the stages."""

    found: FoundFile  # 1. discover
    is_new: bool  # 2. skip unchanged: the index has no row for this path yet
    sha256: str | None = None  # 3. hash and identify
    metadata: PhotoMetadata | None = None  # 3; 4 and 7 add their warnings
    error: str | None = None  # why the photo has no results (any stage); its row keeps it
    image: torch.Tensor | None = None  # 4. decode; let go of once analysed
    jpeg: bytes | None = None  # 4, the file's bytes when the GPU decodes it
    analysis: Analysis | None = None  # 5. analyse, changed by the plugins and 6. personalise

    def row(self) -> PhotoRow:
        """Its row for the index (8. commit): ok, unreadable, or gone while it was scanned."""
        status = "error" if self.error else "ok"
        if self.error and not os.path.lexists(self.found.path):
            status = "missing"  # vanished mid-scan: not unreadable, just gone
        return PhotoRow(self.found, status, self.sha256, self.metadata, self.error)


@dataclass
class Batch:
    """A batch back from stages 3 to 5: every item identified (or its error), ``analysed`` the
    items the models were asked for (a failed decode as their error, the models' output as their
    analysis)."""

    items: list[Item]
    analysed: list[Item]

    @property
    def analyses(self) -> list[Analysis]:
        """The batch's new results, in the order the models gave them."""
        return [item.analysis for item in self.analysed if item.analysis is not None]


# -- 1. discover ----------------------------------------------------------------------------------


@dataclass
class Discovery:
    """What stage 1 found: the image files, and where it could not look."""

    found: list[FoundFile]
    unreadable: list[Path] = field(default_factory=list)  # folders that could not be read
    vanished: list[Path] = field(default_factory=list)  # what watch saw go, or go before a stat


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


def discover(roots: list[Path], summary: ScanSummary) -> Discovery:
    """The image files below ``roots`` (checked ones); a folder that cannot be read is a problem
    in ``summary``."""
    unreadable: list[Path] = []

    def cannot_read(path: Path, exc: OSError) -> None:
        summary.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        unreadable.append(path)

    return Discovery(list(walk(roots, on_error=cannot_read)), unreadable)


def discover_settled(changed: list[Path], gone: list[Path]) -> Discovery:
    """Watch's settled files as found now (one gone since it settled counts as gone)."""
    found, vanished = [], list(gone)
    for path in changed:
        try:
            st = path.stat()
        except OSError:
            vanished.append(path)
            continue
        found.append(FoundFile(path, st.st_size, st.st_mtime_ns))
    return Discovery(found, vanished=vanished)


def gone(
    known: dict[str, IndexedFile], discovery: Discovery, roots: list[Path], summary: ScanSummary
) -> list[str]:
    """The indexed photos below ``roots`` that ``discovery`` no longer found. Those in a folder
    that cannot be read are unreadable, not gone: each counts as an error in ``summary`` (a folder
    without any, as one)."""
    present = [path for path, row in known.items() if row.status != "missing"]
    for folder in discovery.unreadable:
        summary.errors += max(1, sum(is_below(path, [folder]) for path in present))
    seen = {str(f.path) for f in discovery.found}
    return [
        path
        for path in present
        if path not in seen and is_below(path, roots) and not is_below(path, discovery.unreadable)
    ]


def is_below(path: str, roots: list[Path] | list[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


# -- 2. skip unchanged ----------------------------------------------------------------------------


@dataclass
class Todo:
    """What stage 2 leaves to do: the photos for the next stages, and the unchanged photos whose
    sidecar is gone."""

    items: list[Item]
    restore: list[Path]


def skip_unchanged(
    found: list[FoundFile],
    known: dict[str, IndexedFile],
    stale: set[str] | None,
    sidecars: SidecarSync | None,
    summary: ScanSummary,
) -> Todo:
    """Every file of ``found`` that is new or changed, or whose content's results are ``stale``
    (from other model versions; None: all are, ``--reanalyse``), counted in ``summary``."""
    summary.found += len(found)
    todo = Todo([], [])
    for f in found:
        old = known.get(str(f.path))
        if old is None:
            summary.new += 1
        elif old.unchanged(f):
            if stale is not None and old.sha256 not in stale:
                summary.unchanged += 1
                summary.still_unreadable += old.status == "error"
                if old.status == "ok" and sidecars is not None and sidecars.missing(f.path):
                    todo.restore.append(f.path)
                continue
            summary.reanalysed += 1
        else:
            summary.changed += 1
        todo.items.append(Item(f, is_new=old is None))
    return todo


# -- 3. hash and identify -------------------------------------------------------------------------


def identify(item: Item) -> None:
    """Content hash and EXIF of one file."""
    path = item.found.path
    try:
        item.sha256 = sha256_file(path)
    except OSError as exc:
        item.error = read_problem(path, exc)
        return
    item.metadata = read_metadata(path)


class Reuse:
    """Stage 3's driver half: of each identified batch, the photos whose content the models must
    see; and, as batches are committed, the contents analysed so far this pass."""

    def __init__(self, index: Index, models: str | None, summary: ScanSummary) -> None:
        self.index = index
        self.models = models  # None: every content is analysed again (``--reanalyse``)
        self.summary = summary
        # Content on its way through the engine: the item that carries it. A copy in a later
        # batch is not analysed again: batches are committed in order, so the result is in the
        # index by the time the copy's batch is committed.
        self.claimed: dict[str, Item] = {}

    def pick(self, items: list[Item]) -> list[Item]:
        """One item per content without results of these models, none already claimed."""
        ok = [item for item in items if item.error is None]
        hashes = (item.sha256 for item in ok if item.sha256)
        done = set() if self.models is None else self.index.analyzed(hashes, self.models)
        chosen = []
        for item in ok:
            assert item.sha256 is not None
            if item.sha256 in done:
                self.summary.reused += item.is_new
            elif item.sha256 not in self.claimed:
                self.claimed[item.sha256] = item
                chosen.append(item)
        return chosen

    def settle(self, batch: Batch) -> None:
        """A copy of a content whose analysis failed (in this batch or an earlier one) fails
        with it."""
        for item in batch.items:
            first = self.claimed.get(item.sha256) if item.sha256 else None
            if item.error is None and first is not None and first.error:
                item.error = f"{item.found.path}: same content as {first.error}"

    def release(self, batch: Batch) -> None:
        """Once ``batch`` is committed, its results are in the index; a failure stays claimed
        for its copies in later batches."""
        for item in batch.analysed:
            if item.error is None:
                del self.claimed[item.sha256]  # type: ignore[arg-type]


# -- 4. decode ------------------------------------------------------------------------------------


def decode(item: Item) -> None:
    """Decode and preprocess one photo for the encoder; what Pillow warns about it is added to its
    metadata's warning."""
    from photobatch.library.imaging import ImageError, load_image, pillow_warnings, to_tensor

    try:
        with pillow_warnings() as noted:
            item.image = to_tensor(load_image(item.found.path))
    except ImageError as exc:
        item.error = str(exc)
    except OSError as exc:
        item.error = read_problem(item.found.path, exc)
    metadata = item.metadata or PhotoMetadata()
    new = [n for n in noted if n not in (metadata.warning or "")]
    if new:
        item.metadata = replace(metadata, warning="; ".join(filter(None, [metadata.warning, *new])))


# -- 5. analyse -----------------------------------------------------------------------------------


def analyse(analyzer: Analyzer, decoded: list[Item]) -> None:
    """The image models' output on each decoded item, its image let go of (the personal head
    comes in stage 6, on the driver)."""
    from photobatch.models.captioner import CheckpointError

    try:
        analyses = analyzer.describe(
            [item.sha256 for item in decoded],  # type: ignore[misc]
            [item.image for item in decoded],  # type: ignore[misc]
        )
    except CheckpointError as exc:  # the models cannot run: no photo can be analysed
        raise ScanError(str(exc)) from exc
    attach(decoded, analyses)


def attach(decoded: list[Item], analyses: list[Analysis]) -> None:
    """Give each decoded item its analysis (the models return one per image, in order)."""
    for item, analysis in zip(decoded, analyses, strict=True):
        item.analysis = analysis
        item.image = None


# -- 3 to 5, batch by batch through an engine -----------------------------------------------------


# Stage 3's choice on the driver, given a batch of identified items, of those the models must see.
Pick = Callable[[list[Item]], list[Item]]


class Engine(Protocol):
    """Where stages 3 to 5 run and how many batches each keeps in flight; ``through_engine``
    holds their order."""

    identify_ahead: int  # batches hashed ahead of the one the driver picks from

    def running(self) -> AbstractContextManager[object]:
        """What one pass through the engine holds (the local engine's thread pool)."""
        ...

    def batches(self, todo: list[Item]) -> Iterator[list[Item]]:
        """``todo`` in batches of the size its models take."""
        ...

    def identify_batch(self, items: list[Item]) -> Callable[[], None]:
        """Start stage 3 on a batch; the call returned waits for it and fills in the items."""
        ...

    def analyse_batch(self, items: list[Item], picked: list[Item]) -> Callable[[], Batch]:
        """Start stages 4 and 5 on the ``picked`` items of a batch; the call returned waits for
        the batch."""
        ...

    def analyse_ahead(self) -> int:
        """How many batches are decoded and analysed ahead of the one the driver waits for."""
        ...

    def close(self) -> None: ...


def through_engine(engine: Engine, todo: list[Item], pick: Pick) -> Iterator[Batch]:
    """Stages 3 to 5 over ``todo``, batch by batch: hashed and identified where the engine puts
    it, ``pick`` choosing on the driver what the models must see, those decoded and analysed where
    the engine puts them. Batches come back in order, each once, as they finish; meanwhile the
    engine keeps its ``identify_ahead`` batches hashing and ``analyse_ahead()`` analysing."""
    with engine.running():
        batches = engine.batches(todo)
        identifying: deque[tuple[list[Item], Callable[[], None]]] = deque()
        analysing: deque[Callable[[], Batch]] = deque()

        def identify_ahead(count: int) -> None:
            while len(identifying) < count and (items := next(batches, None)) is not None:
                identifying.append((items, engine.identify_batch(items)))

        identify_ahead(max(1, engine.identify_ahead))
        while identifying:
            items, identified = identifying.popleft()
            identified()
            analysing.append(engine.analyse_batch(items, pick(items)))
            identify_ahead(engine.identify_ahead)
            ahead = engine.analyse_ahead()
            while len(analysing) > ahead:
                yield analysing.popleft()()
            identify_ahead(1)
        while analysing:
            yield analysing.popleft()()


# -- 6. personalise -------------------------------------------------------------------------------


def personalise(analyzer: Analyzer, batch: Batch) -> None:
    """The personal head ranks each new analysis's hashtags (after the after-analysis plugins
    changed them)."""
    fresh = [(item, item.analysis) for item in batch.analysed if item.analysis is not None]
    ranked = analyzer.repersonalize([analysis for _, analysis in fresh])
    for (item, _), analysis in zip(fresh, ranked, strict=True):
        item.analysis = analysis


def refresh_personal(
    index: Index,
    analyzer: Analyzer,
    sidecars: SidecarSync | None,
    roots: list[Path],
    summary: ScanSummary,
    batch_size: int,
) -> None:
    """Re-rank photos analysed before the personal head was (re)trained or removed, apply the
    after-analysis plugins again to those analysed before they changed, and rewrite the sidecars
    of those below ``roots``.

    Costs one SQL query when nothing changed; torch is imported only when something did.
    """
    head, models = analyzer.personal.id, analyzer.models
    stale = list(index.unpersonalized(head, analysis_plugins(), models))
    if not stale:
        return
    scanned = partial(is_below, roots=roots)
    replugged = reapplied(index, stale, models, summary, batch_size, scanned)
    updated = analyzer.repersonalize(replugged)
    index.set_personal(updated)
    summary.personalized = sum(a.personalized_by != head for a in stale)
    if sidecars is not None:
        paths = index.paths_with(a.sha256 for a in updated).values()
        rewrite_sidecars(
            index, sidecars, [p for ps in paths for p in ps if is_below(str(p), roots)], summary
        )


# -- 7. sidecars ----------------------------------------------------------------------------------


def sidecar_lock(index: Index, sidecars: SidecarSync | None) -> AbstractContextManager[object]:
    """Held from reading a photo's record to committing it whenever sidecars are written, so
    ``photobatch review`` and a scan never write a sidecar from each other's old view."""
    return SidecarLock(index.path) if sidecars is not None else nullcontext()


def write_sidecars(
    index: Index, sidecars: SidecarSync | None, batch: Batch, summary: ScanSummary
) -> None:
    """Carry the reviews of photos edited in place over to their new content, then write each
    photo's sidecars (a new path's come along from where its content was, if that file is gone:
    a move); a photo whose sidecar failed is retried next scan."""
    index.carry_reviews(
        [(i.found.path, i.sha256) for i in batch.items if i.sha256 and i.error is None]
    )
    if sidecars is None:
        return
    fresh = {item.sha256: item.analysis for item in batch.analysed if item.analysis is not None}
    origins = index.paths_with(
        item.sha256 for item in batch.items if item.is_new and item.error is None and item.sha256
    )
    reviews = index.reviews(item.sha256 for item in batch.items if item.sha256)
    for item in batch.items:
        if item.error is not None or item.sha256 is None:
            continue
        was = origins.get(item.sha256, []) if item.is_new else []
        left = [path for path in was if not os.path.lexists(path)]
        if left:
            origins[item.sha256].remove(left[0])
            report(sidecars.move(left[0], item.found.path), summary)
        record = PhotoRecord(
            path=item.found.path,
            sha256=item.sha256,
            status="ok",
            metadata=item.metadata or PhotoMetadata(),
            analysis=fresh.get(item.sha256) or index.analysis(item.sha256),
            review=reviews.get(item.sha256),
        )
        problems = sidecars.write(record)
        if problems:
            report(problems, summary)
            metadata = item.metadata or PhotoMetadata()
            notes = [metadata.warning, *problems]
            item.metadata = replace(metadata, warning="; ".join(n for n in notes if n))
            # An impossible mtime makes the next scan's change gate look at it again.
            item.found = replace(item.found, mtime_ns=-1)


def rewrite_sidecars(
    index: Index, sidecars: SidecarSync, paths: list[Path], summary: ScanSummary
) -> None:
    """Bring the sidecars of these indexed photos up to date with their records."""
    with sidecar_lock(index, sidecars):
        for path in paths:
            record = index.record(path)
            if record is not None and record.status == "ok":
                report(sidecars.write(record), summary)


def report(problems: list[str], summary: ScanSummary) -> None:
    """Count sidecar problems in ``summary``, each one line in its problems."""
    summary.sidecar_problems += len(problems)
    summary.problems.extend(problems)


# -- 8. commit ------------------------------------------------------------------------------------


def commit(index: Index, batch: Batch, summary: ScanSummary) -> None:
    """Store the batch's rows and new results in one index transaction, counted in
    ``summary``."""
    summary.analyzed += len(batch.analyses)
    rows = [item.row() for item in batch.items]
    failed = [row.error for row in rows if row.status == "error" and row.error]
    summary.problems.extend(failed)
    summary.errors += len(failed)
    summary.missing += sum(row.status == "missing" for row in rows)
    index.write_batch(rows, batch.analyses)


def mark_missing(
    index: Index, sidecars: SidecarSync | None, paths: list[str], summary: ScanSummary
) -> None:
    """Mark photos that are gone missing (their results are kept) and remove the sidecars
    photobatch alone wrote for them."""
    summary.missing += index.mark_missing(paths)
    if sidecars is None:
        return
    for path in paths:
        record = index.record(Path(path))
        if record is not None:
            report(sidecars.forget(record), summary)
