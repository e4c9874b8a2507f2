"""The scan benchmark: is a scan as fast as merely decoding the photos?

One run generates realistic 12 MP camera JPEGs (cached in a work folder), measures the time to
fully decode them with Pillow (the reference the targets are stated against), then runs a real
``photobatch scan`` over them in a child process for its wall clock and peak memory, and times a
no-op rescan of a large library of small files. ``BenchResult.table()`` renders the row of
docs/performance.md.

Everything is measured in child processes or on disk exactly as a user would run it: a scan's
time includes starting Python, importing torch and loading the models, because that is what the
user waits for.
"""

from __future__ import annotations

import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from photobatch.core.config import Config
from photobatch.core.records import Analysis, FoundFile, PhotoRow
from photobatch.library.discovery import sha256_file, walk
from photobatch.library.index import Index
from photobatch.library.metadata import read_metadata
from photobatch.models.stack import model_set
from photobatch.research.bench_photos import make_library, make_small_files
from photobatch.research.bench_result import (
    RSS_POLL_S,
    TARGET_RESCAN_FILES,
    BenchmarkError,
    BenchResult,
    ChildRun,
    CommitRate,
    DecodeResult,
    Machine,
)
from photobatch.research.data import DataNotFound, research_data
from photobatch.scan.summary import ScanSummary

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "photobatch-bench"
PROFILE_TOP = 20


# -- measurements ---------------------------------------------------------------------------------


def measure_decode(paths: Sequence[Path]) -> DecodeResult:
    """Fully decode every file with Pillow, one after the other (see ``DECODE_METHOD``)."""
    pixels = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        with Image.open(path) as im:
            im.load()  # no draft(): the full-size decode a viewer or converter would do
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            pixels += rgb.width * rgb.height
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    count = max(1, len(paths))
    return DecodeResult(
        photos=len(paths),
        megapixels=pixels / count / 1e6,
        megabytes=sum(p.stat().st_size for p in paths) / count / 1e6,
        seconds=wall,
        cpu_seconds=cpu,
    )


def measure_scan(
    paths: Sequence[Path],
    workdir: Path,
    *,
    device: str | None = None,
    engine: str | None = None,
    profile: bool = False,
    config: Path | None = None,
) -> ChildRun:
    """Scan ``paths`` end to end in a fresh child process against a fresh index (with
    ``engine="ray"``, on a Ray instance the child starts on this machine, as a user's would).

    The photos are hard-linked into a fresh folder so that sidecars land there, not beside the
    cached photos, where a later run would find them already written. With ``profile`` the
    child runs under cProfile (slower: time such a run only for the profile it prints).
    ``config`` is a photobatch config file to scan with (batch size, workers, captioner...);
    by default the scan runs with the defaults, whatever the user's own config says.
    """
    workdir = Path(workdir)
    library = workdir / ("library-profiled" if profile else "library")
    shutil.rmtree(library, ignore_errors=True)
    library.mkdir(parents=True)
    for path in paths:
        _link_or_copy(Path(path), library / Path(path).name)
    db = _fresh_db(workdir / ("scan-profiled.db" if profile else "scan.db"))
    args = ["scan", "--quiet", str(library)] + (["--device", device] if device else [])
    args += ["--engine", engine] if engine else []
    return _run_scan(workdir, db, args, name="scan", profile=profile, config=config)


def measure_noop_rescan(n_small: int, workdir: Path) -> ChildRun:
    """Time a scan that finds ``n_small`` indexed, unchanged files (see ``NOOP_METHOD``)."""
    workdir = Path(workdir)
    root = make_small_files(workdir, n_small)
    db = _fresh_db(workdir / "rescan.db")
    found = list(walk([root]))
    sample = found[0].path
    sha = sha256_file(sample)
    metadata = read_metadata(sample)
    analysis = Analysis(
        sha256=sha,
        labels=["tabby", "Egyptian cat", "tiger cat"],
        caption="a cat sitting on a sofa",
        hashtags=["cat", "catsofinstagram", "sofa"],
        embedding=bytes(2 * 1280),  # float16 zeros, the size of a real pooled vector
        # The versions a scan with the default settings stamps: anything else is stale and
        # would be re-analysed, which is not what a no-op rescan measures.
        models=model_set(Config(), "auto").models,
    )
    with Index(db) as index:
        for start in range(0, len(found), 10_000):
            rows = [PhotoRow(f, "ok", sha, metadata) for f in found[start : start + 10_000]]
            index.write_batch(rows, [analysis] if start == 0 else [])
    # A scanned library has its sidecars; a seeded one gets them from a first, untimed scan
    # (which restores missing sidecars; they stay in the cached folder for later runs).
    args = ["scan", "--quiet", str(root)]
    _run_scan(workdir, db, args, name="rescan-sidecars", profile=False)
    return _run_scan(workdir, db, args, name="rescan", profile=False)


def measure_commits(workdir: Path, sample: Path, photos: int = 5000) -> CommitRate:
    """How many results per second the scan's driver commits (see ``COMMITS_METHOD``): with the
    Ray engine every photo's sidecars and index rows are written here, so this bounds how many
    nodes one driver can keep busy."""
    import numpy as np

    from photobatch.scan.pipeline import Scanner
    from photobatch.scan.stages import Batch, Item

    metadata = read_metadata(sample)
    models = model_set(Config(), "auto").models
    rng = np.random.default_rng(0)
    tags = [f"tag{i}" for i in range(10)]

    def batches(root: Path) -> list[Batch]:
        shutil.rmtree(root, ignore_errors=True)
        out, size = [], Config().batch_size
        for start in range(0, photos, size):
            items = []
            for i in range(start, min(photos, start + size)):
                path = root / f"{i // 250:03d}" / f"IMG_{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                sha = f"{i:064x}"
                item = Item(FoundFile(path, 3_000_000, 1), is_new=True, sha256=sha)
                item.metadata = metadata
                items.append(item)
                scores = {t: round(1 - j / 10, 3) for j, t in enumerate(tags)}
                item.analysis = Analysis(
                    sha256=sha,
                    labels=["seashore", "sandbar", "lakeside", "breakwater", "promontory"],
                    caption="a dog runs along the beach at sunset",
                    hashtags=tags,
                    candidates=tags,
                    embedding=rng.standard_normal(1280).astype("<f2").tobytes(),
                    models=models,
                    caption_confidence=0.8,
                    caption_source="sat",
                    hashtag_scores=scores,
                    candidate_scores=scores,
                )
            out.append(Batch(items, items))
        return out

    def commit_all(name: str, sidecars: bool) -> float:
        work = batches(workdir / "commits" / name)
        with Index(_fresh_db(workdir / f"commits-{name}.db")) as index:
            scanner = Scanner(Config(index=index.path), index, sidecars=sidecars, progress=False)
            summary = ScanSummary()
            start = time.perf_counter()
            for batch in work:
                scanner.commit(batch, summary)
            seconds = time.perf_counter() - start
        if summary.errors or summary.sidecar_problems:
            raise BenchmarkError(f"driver commits: {summary.problems[:3]}")
        return seconds

    return CommitRate(photos, commit_all("sidecars", True), commit_all("index", False))


def _run_scan(
    workdir: Path,
    db: Path,
    args: list[str],
    *,
    name: str,
    profile: bool,
    config: Path | None = None,
) -> ChildRun:
    if config is None:
        config = workdir / "defaults.yaml"
        config.write_text("{}\n")
    # -P: the child imports the installed photobatch, never a checkout in the current folder
    # (run from another version's checkout, `-m photobatch` would measure that version).
    command = [sys.executable, "-P", "-m", "photobatch", "--config", str(config)]
    command += ["--index", str(db)]
    prof = workdir / f"{name}.prof"
    if profile:
        command[2:2] = ["-m", "cProfile", "-o", str(prof)]
    log = workdir / f"{name}.log"
    seconds, cpu, rss, status = _run_child([*command, *args], log)
    if status != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchmarkError(f"{' '.join(command + args)} exited {status}:\n{tail}")
    with Index(db) as index:
        last = index.last_scan()
    if last is None:
        raise BenchmarkError(f"{name}: the child logged no scan in {db}; see {log}")
    return ChildRun(
        argv=[*command, *args],
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss_mb=rss,
        summary=json.loads(last["summary"]),
        profile=profile_text(prof) if profile else None,
    )


def _run_child(argv: list[str], log: Path) -> tuple[float, float, float, int]:
    """Run ``argv``: (wall s, CPU s, peak RSS MB, exit code).

    A thread blocks in ``wait4`` so the end time is exact and the child's own rusage is read
    (RUSAGE_CHILDREN would mix in every earlier child of this process); meanwhile the process
    tree's RSS is sampled, which also covers worker processes a scan may start.
    """
    done: dict[str, Any] = {}
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            done.update(end=time.perf_counter(), status=status, usage=usage)

        reaper = threading.Thread(target=reap)
        reaper.start()
        tree_peak = 0
        try:
            while reaper.is_alive():
                tree_peak = max(tree_peak, _tree_rss_bytes(proc.pid))
                reaper.join(RSS_POLL_S)
        except BaseException:  # interrupted: leave no scan running behind the benchmark
            proc.kill()
            reaper.join()
            raise
    proc.returncode = os.waitstatus_to_exitcode(done["status"])  # reaped here, not by Popen
    usage = done["usage"]
    peak = max(usage.ru_maxrss * 1024, tree_peak)  # ru_maxrss is in KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return done["end"] - start, cpu, peak / 1e6, proc.returncode


def _tree_rss_bytes(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants now (shared pages count once per process)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as fh:
                total += int(fh.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    stack.extend(int(child) for child in fh.read().split())
        except (OSError, ValueError):  # exited between two reads
            continue
    return total


def profile_text(prof: Path, top: int = PROFILE_TOP) -> str:
    """The top cumulative entries of a cProfile dump, then how ``Scanner.scan`` and its run of
    the stages, the local engine's ``_finish`` and ``Analyzer.describe`` split their time among
    the stages.

    cProfile sees the main thread only: hashing, EXIF and decoding run in the scan's thread
    pool and show up as the main thread waiting for them in the local engine's ``_wait``.
    """
    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(top)
    stats.print_callees(
        r"pipeline\.py:\d+\((scan|_run)\)|local\.py:\d+\(_finish\)|stack\.py:\d+\(describe\)"
    )
    return out.getvalue()


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another filesystem: a copy reads the same
        shutil.copy2(src, dest)


def _fresh_db(db: Path) -> Path:
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".lock"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    return db


def run_benchmark(
    workdir: Path = DEFAULT_WORKDIR,
    *,
    photos: int = 32,
    small_files: int = TARGET_RESCAN_FILES,
    source_dir: Path | None = None,
    device: str | None = None,
    engine: str = "local",
    profile: bool = False,
    config: Path | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> BenchResult:
    """The whole ``photobatch bench`` run; ``profile`` adds a separate, untimed cProfile scan.

    ``source_dir`` defaults to the research data's Flickr8k photos (``photobatch.research.data``).
    """
    if source_dir is None:
        try:
            source_dir = research_data("flickr8k", "images")
        except DataNotFound as exc:
            raise BenchmarkError(f"{exc}, or pass --source DIR (photos to upscale)") from exc
    if not Path(source_dir).is_dir():
        raise BenchmarkError(f"{source_dir}: no such folder of source photos")
    machine = Machine.current()
    log(f"generating {photos} photos in {workdir} (cached across runs)")
    paths = make_library(workdir, photos, source_dir)
    log("decoding them with Pillow (the reference)")
    before = measure_decode(paths)
    log(f"decode: {before.seconds:.2f} s; scanning them in a child process")
    scan = measure_scan(paths, workdir, device=device, engine=engine, config=config)
    log(f"scan: {scan.seconds:.2f} s; decoding them again")
    after = measure_decode(paths)
    decode = replace(
        before,
        seconds=(before.seconds + after.seconds) / 2,
        cpu_seconds=(before.cpu_seconds + after.cpu_seconds) / 2,
    )
    log(f"decode: {after.seconds:.2f} s; no-op rescan of {small_files:,} small files")
    rescan = measure_noop_rescan(small_files, workdir)
    commits = None
    if engine == "ray":
        log("timing the driver's commits")
        commits = measure_commits(workdir, paths[0])
    profiled: str | None = None
    if profile:
        log("profiling one more scan (cProfile; not timed)")
        profiled = measure_scan(
            paths, workdir, device=device, engine=engine, profile=True, config=config
        ).profile
    command = "photobatch" + (f" --config {config}" if config else "")
    command += f" bench --photos {photos} --small-files {small_files}"
    if device:
        command += f" --device {device}"
    if engine != "local":
        command += f" --engine {engine}"
    return BenchResult(
        machine, decode, scan, rescan, command, profile=profiled, engine=engine, commits=commits
    )
