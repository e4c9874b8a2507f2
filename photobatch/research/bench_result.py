"""What ``photobatch bench`` reports: the machine, the measured runs, the targets and the table."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from photobatch.core.errors import UserError

# The performance targets of docs/performance.md, for a 2-core CPU.
TARGET_RATIO = 1.0  # scan wall time / full Pillow decode time of the same files


TARGET_PHOTOS_PER_S = 14.0


TARGET_PEAK_RSS_MB = 1500.0  # 1.5 GB, in MB of 10^6 bytes


TARGET_RESCAN_S = 10.0


TARGET_RESCAN_FILES = 100_000


@dataclass(frozen=True)
class Machine:
    cores: int  # usable by this process (affinity), not the host's count
    cpu: str
    ram_gb: float
    load: float  # 1-minute load average when the run started: how noisy the numbers are

    @classmethod
    def current(cls) -> Machine:
        cpu, ram_kb = "unknown CPU", 0
        for line in _read_lines("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in _read_lines("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
        return cls(
            cores=len(os.sched_getaffinity(0)),
            cpu=cpu,
            ram_gb=ram_kb / 1e6,
            load=os.getloadavg()[0],
        )

    def describe(self) -> str:
        return f"{self.cores} cores {self.cpu}, {self.ram_gb:.0f} GB RAM (load {self.load:.1f})"


def _read_lines(path: str) -> Iterator[str]:
    try:
        with open(path) as fh:
            yield from fh
    except OSError:
        return


TABLE_COLUMNS = (
    "machine",
    "photos",
    "decode s",
    "scan s",
    "scan / decode",
    "photos/s",
    "peak RSS MB",
    "no-op rescan",
    "engine",
    "driver commits/s",
    "command",
)


@dataclass(frozen=True)
class BenchResult:
    machine: Machine
    decode: DecodeResult
    scan: ChildRun
    rescan: ChildRun
    command: str  # the photobatch command line that reproduces this run
    profile: str | None = None
    engine: str = "local"
    commits: CommitRate | None = None  # measured with the Ray engine, whose driver commits all
    methods: dict[str, str] = field(
        default_factory=lambda: {
            "decode": DECODE_METHOD,
            "scan": SCAN_METHOD,
            "noop_rescan": NOOP_METHOD,
            "driver_commits": COMMITS_METHOD,
        }
    )

    @property
    def ratio(self) -> float:
        return self.scan.seconds / self.decode.seconds

    @property
    def photos_per_s(self) -> float:
        return self.decode.photos / self.scan.seconds

    @property
    def rescan_files(self) -> int:
        return int(self.rescan.summary.get("found", 0))

    @property
    def rescan_target_s(self) -> float:
        """The 10 s for 100,000 files, scaled linearly when fewer files were measured."""
        return TARGET_RESCAN_S * self.rescan_files / TARGET_RESCAN_FILES

    def checks(self) -> dict[str, bool]:
        return {
            "ratio": self.ratio <= TARGET_RATIO,
            "photos_per_s": self.photos_per_s >= TARGET_PHOTOS_PER_S,
            "peak_rss": self.scan.peak_rss_mb <= TARGET_PEAK_RSS_MB,
            "noop_rescan": self.rescan.seconds <= self.rescan_target_s,
        }

    def table(self, header: bool = True) -> str:
        """A Markdown table (or its row) for docs/performance.md, pass/fail against each target."""
        ok = {name: "pass" if passed else "FAIL" for name, passed in self.checks().items()}
        d = self.decode
        cells = (
            self.machine.describe(),
            f"{d.photos} x {d.megapixels:.1f} MP, {d.megabytes:.1f} MB",
            f"{d.seconds:.2f}",
            f"{self.scan.seconds:.2f}",
            f"{self.ratio:.2f} {ok['ratio']} (≤ {TARGET_RATIO:g})",
            f"{self.photos_per_s:.2f} {ok['photos_per_s']} (≥ {TARGET_PHOTOS_PER_S:g})",
            f"{self.scan.peak_rss_mb:.0f} {ok['peak_rss']} (≤ {TARGET_PEAK_RSS_MB:.0f})",
            f"{self.rescan.seconds:.2f} s for {self.rescan_files:,} files {ok['noop_rescan']} "
            f"(≤ {self.rescan_target_s:.2g} s)",
            self.engine,
            self.commits.line() if self.commits else "not measured",
            f"`{self.command}`",
        )
        lines = [_row(TABLE_COLUMNS), _row(("---",) * len(TABLE_COLUMNS))] if header else []
        return "\n".join([*lines, _row(cells)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": asdict(self.machine),
            "decode": asdict(self.decode),
            "scan": _child_dict(self.scan),
            "noop_rescan": _child_dict(self.rescan),
            "ratio": self.ratio,
            "photos_per_s": self.photos_per_s,
            "targets": {
                "ratio": TARGET_RATIO,
                "photos_per_s": TARGET_PHOTOS_PER_S,
                "peak_rss_mb": TARGET_PEAK_RSS_MB,
                "noop_rescan_s": self.rescan_target_s,
            },
            "checks": self.checks(),
            "engine": self.engine,
            "driver_commits": asdict(self.commits) if self.commits else None,
            "command": self.command,
            "methods": self.methods,
            "profile": self.profile,
        }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _child_dict(run: ChildRun) -> dict[str, Any]:
    return {k: v for k, v in asdict(run).items() if k != "profile"} | {"analysed": run.analysed}


RSS_POLL_S = 0.05


DECODE_METHOD = (
    "Pillow Image.open(p).load() of every file at full size (libjpeg-turbo to RGB, no draft "
    "mode, no resize), one thread in one process, files already in the page cache; wall clock "
    "over all files, once before the scan and once after it, averaged (a shared machine's speed "
    "drifts between runs; bracketing the scan compares the two at the same moment). No "
    "hashing, no EXIF."
)


SCAN_METHOD = (
    "python -m photobatch --config <the given file, else an empty one: the defaults> --index "
    "<fresh db> scan <fresh folder of hard links to the photos>, sidecars on; wall clock from "
    "spawning the child to its exit (interpreter start, imports and model loading included), "
    "files already in the page cache. "
    "Peak RSS: the larger of the child's kernel high-water mark (wait4 ru_maxrss) and the sum "
    f"of VmRSS over its process tree sampled every {RSS_POLL_S:g} s."
)


NOOP_METHOD = (
    "N copies of one 1 KB JPEG in nested folders (250 per folder), indexed without the models: "
    "the index is seeded through Index.write_batch with their real size and mtime and one "
    "analysis for their single shared sha256 (identical content has one analysis), stamped with "
    "the model versions a default scan uses; a first, untimed scan writes their sidecars, as a "
    "real scan would have. Then a real python -m photobatch scan --quiet child over them, timed "
    "like the scan; dentries warm."
)


COMMITS_METHOD = (
    "Scanner.commit, the driver's share of every photo, on N already analysed results in batches "
    "of the CPU batch size (distinct contents; a caption, 10 hashtags with scores and candidates, "
    "a 1280-float16 embedding, the EXIF of a generated photo), into a fresh index: once with XMP "
    "sidecars written beside N empty files, once index only; wall clock of the commits alone."
)


@dataclass(frozen=True)
class CommitRate:
    """How fast one driver commits results: the bound on a cluster's throughput."""

    photos: int
    seconds: float  # sidecars and index
    index_seconds: float  # the index alone (--no-sidecars)

    def line(self) -> str:
        return (
            f"{self.photos / self.seconds:,.0f} with XMP sidecars, "
            f"{self.photos / self.index_seconds:,.0f} index only"
        )


@dataclass(frozen=True)
class DecodeResult:
    """The reference: how long merely decoding the photos takes."""

    photos: int
    megapixels: float  # per photo, on average
    megabytes: float  # file size per photo, on average
    seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class ChildRun:
    """One measured ``photobatch scan`` child: its cost and the summary it logged in the index."""

    argv: list[str]
    seconds: float
    cpu_seconds: float  # user + system of the child and everything it waited for
    peak_rss_mb: float
    summary: dict[str, Any]  # the ScanSummary the child wrote to the index's scans table
    profile: str | None = None  # top entries of a cProfile run, when one was asked for

    @property
    def analysed(self) -> int:
        return int(self.summary.get("analyzed", 0))


class BenchmarkError(UserError):
    """The benchmark cannot run or a measured child failed; the message says which and why."""
