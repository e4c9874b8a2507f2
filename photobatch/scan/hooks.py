"""Where a scan calls the plugins' hooks (``photobatch.core.hooks``, ``docs/plugins.md``).

They run on the machine that owns the index, whichever engine analysed the photos: the engines
hand back the models' output, and the scan runs the after-analysis plugins, then the personal
head, then commits. A Ray node needs no plugin installed. A photo whose after-analysis plugins
changed since (one installed, upgraded or removed) gets the current ones applied again to the
models' output it keeps, without the models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from photobatch.core.hooks import (
    AnalysedPhoto,
    after_analysis,
    after_commit,
    analysis_plugins,
    has_hook,
)
from photobatch.core.records import Analysis, PhotoMetadata
from photobatch.library.index import Index
from photobatch.scan.summary import ScanSummary

if TYPE_CHECKING:
    from photobatch.scan.stages import Batch


def analysed(batch: Batch, summary: ScanSummary) -> None:
    """Let the after-analysis plugins change the batch's new analyses."""
    if not batch.analyses or not has_hook("photobatch_after_analysis"):
        return
    fresh = [(item, item.analysis) for item in batch.analysed if item.analysis is not None]
    photos = [
        AnalysedPhoto(item.found.path, item.metadata or PhotoMetadata(), analysis)
        for item, analysis in fresh
    ]
    for (item, _), changed in zip(fresh, _run(photos, summary), strict=True):
        item.analysis = changed


def reapplied(
    index: Index,
    analyses: list[Analysis],
    models: str,
    summary: ScanSummary,
    batch_size: int,
    scanned: Callable[[str], bool],
) -> list[Analysis]:
    """``analyses``, those of ``models`` that other after-analysis plugins (or none) ran on with
    the current ones applied again to the models' own output, a batch at a time. Only photos
    present in the ``scanned`` folders are done (their sidecars are rewritten with them); the
    others wait for the scan of theirs."""
    current = analysis_plugins()
    stale = [a for a in analyses if a.models == models and a.plugins != current]
    found = index.paths_with(a.sha256 for a in stale)
    paths = {sha: [p for p in ps if scanned(str(p))] for sha, ps in found.items()}
    stale = [a for a in stale if paths.get(a.sha256)]
    redone: dict[str, Analysis] = {}
    for start in range(0, len(stale), batch_size):
        photos = []
        for a in stale[start : start + batch_size]:
            path = paths[a.sha256][0]
            record = index.record(path)
            metadata = record.metadata if record is not None else PhotoMetadata()
            photos.append(AnalysedPhoto(path, metadata, a.unplugged()))
        redone.update((a.sha256, a) for a in _run(photos, summary))
    summary.replugged += len(redone)
    return [redone.get(a.sha256, a) for a in analyses]


def committed(index: Index, batch: Batch, summary: ScanSummary) -> None:
    """Show the after-commit plugins the batch as the index now holds it."""
    if not has_hook("photobatch_after_commit"):
        return
    records = [index.record(item.found.path) for item in batch.items]
    problems: list[str] = []
    after_commit([r for r in records if r is not None], problems)
    _report(problems, summary)


def _run(photos: list[AnalysedPhoto], summary: ScanSummary) -> list[Analysis]:
    problems: list[str] = []
    results = after_analysis(photos, problems)
    _report(problems, summary)
    return results


def _report(problems: list[str], summary: ScanSummary) -> None:
    summary.plugin_errors += len(problems)
    summary.problems.extend(problems)
