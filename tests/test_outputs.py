"""Output paths a user gives (``export -o``, ``show --attention``) never land on what the user owns
or photobatch keeps, and a failed write leaves the old file whole.

Each refusal is one line, exit 1, with the file as it was: the index still opens, the photo and
its sidecar keep their bytes.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import one_line
from click.testing import CliRunner, Result
from test_bad_input import photo, scanner

from photobatch.cli import cli
from photobatch.core.records import FoundFile, PhotoRow
from photobatch.library.index import Index


def run(index: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(index), *args])


@pytest.fixture
def library(tmp_path: Path, research_data: Path) -> Path:
    """Two real photos scanned into ``tmp_path/index.db``, with their XMP sidecars."""
    root = tmp_path / "photos"
    root.mkdir()
    photo(research_data, "DSCN0010.jpg").save(root / "a.jpg")
    photo(research_data, "DSCN0012.jpg").save(root / "b.jpg")
    scan, index = scanner(tmp_path)
    scan.scan([root])
    index.close()
    (root / "b.jpg.json").write_text('{"from": "another app"}')  # Google Takeout's naming
    return root


def snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths if p.is_file()}


CASES = {
    "the index": lambda t: t / "index.db",
    "its WAL": lambda t: t / "index.db-wal",
    "its shared memory": lambda t: t / "index.db-shm",
    "its lock": lambda t: t / "index.db.lock",
    "its sidecar lock": lambda t: t / "index.db.sidecars.lock",
    "its personal folder": lambda t: t / "index.db.personal" / "report.csv",
    "an indexed photo": lambda t: t / "photos" / "a.jpg",
    "an indexed photo by a relative path": lambda t: Path(os.path.relpath(t / "photos" / "a.jpg")),
    "a photo not yet indexed": lambda t: t / "photos" / "new.jpg",
    "a sidecar photobatch wrote": lambda t: t / "photos" / "a.jpg.xmp",
    "another app's sidecar": lambda t: t / "photos" / "b.jpg.json",
    "a link to the index": lambda t: t / "report.csv",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["export", "attention"])
def test_an_output_path_on_something_kept_is_refused_and_left_alone(
    tmp_path: Path, library: Path, research_data: Path, case: str, command: str
) -> None:
    (tmp_path / "index.db.personal").mkdir(exist_ok=True)
    photo(research_data, "DSCN0010.jpg").save(library / "new.jpg")  # not scanned yet
    (tmp_path / "report.csv").symlink_to(tmp_path / "index.db")
    target = CASES[case](tmp_path)
    kept = snapshot(*tmp_path.glob("index.db*"), *library.iterdir(), tmp_path / "index.db.personal")
    if command == "export":
        result = run(tmp_path / "index.db", "export", "--format", "csv", "-o", str(target))
    else:
        shown = library / "a.jpg"
        result = run(tmp_path / "index.db", "show", str(shown), "--attention", str(target))
    line = one_line(result)
    assert line.startswith(f"photobatch: {target}: not written: it is "), line
    assert line.endswith("; choose another file")
    assert snapshot(*kept) == kept
    assert not (tmp_path / "index.db.personal" / "report.csv").exists()
    assert run(tmp_path / "index.db", "status").exit_code == 0


def test_an_attention_figure_replaces_an_earlier_one_but_not_a_png_photo(
    tmp_path: Path, library: Path
) -> None:
    figure = tmp_path / "figure.png"
    for _ in range(2):  # drawn, then drawn again over the first
        result = run(
            tmp_path / "index.db", "show", str(library / "a.jpg"), "--attention", str(figure)
        )
        assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(figure) as drawn:
        drawn.convert("RGB").save(tmp_path / "holiday.png")  # a PNG photo of the user's
    before = (tmp_path / "holiday.png").read_bytes()
    line = one_line(
        run(
            tmp_path / "index.db",
            "show",
            str(library / "a.jpg"),
            "--attention",
            str(tmp_path / "holiday.png"),
        )
    )
    assert line.endswith("not written: it is a photo; choose another file")
    assert (tmp_path / "holiday.png").read_bytes() == before


def test_an_export_that_fills_the_disk_leaves_the_old_report_whole(tmp_path: Path) -> None:
    """A file size limit (RLIMIT_FSIZE) stands in for a full disk: the kernel fails the write."""
    with Index(tmp_path / "index.db") as index:
        rows = [
            PhotoRow(FoundFile(Path(f"/photos/{i:05}.jpg"), 1, 1), "error", error="x" * 200)
            for i in range(1000)
        ]
        index.write_batch(rows, [])
    report = tmp_path / "report.csv"
    report.write_text("yesterday's report\n")
    limit = 64 * 1024  # beyond SQLite's 32 kB shared memory file, short of the 200 kB export

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    index = str(tmp_path / "index.db")
    result = subprocess.run(
        [sys.executable, "-m", "photobatch", "--index", index, "export", "--format", "csv",
         "-o", str(report)],
        capture_output=True,
        text=True,
        preexec_fn=small_disk,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"photobatch: {report}: cannot write the export: File too large\n"
    assert report.read_text() == "yesterday's report\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "report" in p.name) == ["report.csv"]


def test_an_export_replaces_the_old_report_keeping_its_permissions(tmp_path: Path) -> None:
    Index(tmp_path / "index.db").close()
    report = tmp_path / "report.csv"
    report.write_text("old\n")
    report.chmod(0o600)
    result = run(tmp_path / "index.db", "export", "--format", "csv", "-o", str(report))
    assert result.exit_code == 0, result.output
    assert report.read_text().startswith("path,sha256,")
    assert report.stat().st_mode & 0o777 == 0o600
