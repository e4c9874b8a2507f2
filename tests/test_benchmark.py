"""``photobatch bench`` at toy scale: its photos, its measurements and its docs/performance.md row.

Photos are generated small (320x240) from one shared Flickr8k photo so the tests take seconds;
the real run (12 MP) goes through the same code with the default size.
"""

from __future__ import annotations

import json
from pathlib import Path

import exifread
import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from photobatch.library.metadata import read_metadata
from photobatch.research.bench import measure_decode, measure_noop_rescan
from photobatch.research.bench_photos import make_library, upscale
from photobatch.research.bench_result import (
    TABLE_COLUMNS,
    BenchResult,
    ChildRun,
    DecodeResult,
    Machine,
)

SIZE = (320, 240)
SOURCE_NAME = "1000268201_693b08cb0e.jpg"


@pytest.fixture(scope="module")
def source_dir(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one shared photo (linked, not copied), so every photo derives from it."""
    folder = tmp_path_factory.mktemp("source")
    (folder / SOURCE_NAME).symlink_to(research_data / "flickr8k" / "images" / SOURCE_NAME)
    return folder


@pytest.fixture(scope="module")
def library(source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_library(tmp_path_factory.mktemp("bench"), 2, source_dir, seed=7, size=SIZE)


def test_photos_are_jpegs_of_the_requested_size(library: list[Path]) -> None:
    assert len(library) == 2
    for path in library:
        with Image.open(path) as im:
            assert (im.format, im.size) == ("JPEG", SIZE)
            assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0, as cameras write


def test_exif_is_camera_exif_that_exifread_and_photobatch_read(library: list[Path]) -> None:
    with library[0].open("rb") as fh:
        tags = exifread.process_file(fh, details=False)
    assert str(tags["Image Make"]) == "samsung"
    assert str(tags["EXIF ISOSpeedRatings"]).isdigit()
    first, second = (read_metadata(p) for p in library)
    assert first.warning is None and first.camera_model == "SM-A515F"
    assert first.taken_at is not None and first.taken_at.startswith("2023-07-14T")
    assert first.lat == pytest.approx(48.86, abs=0.1) and first.lon == pytest.approx(2.35, abs=0.1)
    assert (first.width, first.height, first.orientation) == (*SIZE, 1)
    assert second.camera_make == "Xiaomi" and second.lat is None  # GPS on every third photo


def test_photos_carry_grain_over_the_plain_upscale(library: list[Path], source_dir: Path) -> None:
    with Image.open(source_dir / SOURCE_NAME) as source:
        plain = np.asarray(upscale(source, SIZE), dtype=np.float32)
    decoded = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in library]
    for pixels in decoded:
        grain = pixels - plain
        assert abs(float(grain.mean())) < 1.0  # noise, not a colour or brightness shift
        assert float(grain.std()) > 2.0
    assert float(np.abs(decoded[0] - decoded[1]).mean()) > 1.0  # each photo its own grain


def test_library_is_cached_and_deterministic(
    library: list[Path], source_dir: Path, tmp_path: Path
) -> None:
    stamps = [p.stat().st_mtime_ns for p in library]
    again = make_library(library[0].parents[1], 2, source_dir, seed=7, size=SIZE)
    assert again == library and [p.stat().st_mtime_ns for p in again] == stamps
    fresh = make_library(tmp_path, 1, source_dir, seed=7, size=SIZE)
    assert fresh[0].read_bytes() == library[0].read_bytes()


def test_decode_reference_counts_full_size_pixels(library: list[Path]) -> None:
    result = measure_decode(library)
    assert result.photos == 2
    assert result.megapixels == pytest.approx(SIZE[0] * SIZE[1] / 1e6)
    assert result.seconds > 0 and result.megabytes > 0


def test_noop_rescan_analyses_nothing(tmp_path: Path) -> None:
    run = measure_noop_rescan(200, tmp_path)
    assert run.analysed == 0
    assert run.summary["found"] == run.summary["unchanged"] == 200
    assert run.summary["new"] == run.summary["changed"] == 0
    assert run.seconds > 0 and run.peak_rss_mb > 10
    again = measure_noop_rescan(200, tmp_path)  # the small files are reused, the index reseeded
    assert again.summary["unchanged"] == 200 and again.analysed == 0


def test_the_scan_measured_is_the_installed_photobatch_whatever_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another version's checkout, ``python -m photobatch`` would import that checkout's
    code: the bench would measure it, not the photobatch it belongs to (it happened)."""
    other = tmp_path / "checkout"
    (other / "photobatch").mkdir(parents=True)
    (other / "photobatch" / "__init__.py").write_text("")
    (other / "photobatch" / "__main__.py").write_text("raise SystemExit('another photobatch')\n")
    monkeypatch.chdir(other)
    run = measure_noop_rescan(20, tmp_path / "work")
    assert run.summary["found"] == run.summary["unchanged"] == 20


def test_table_renders_every_column_with_pass_and_fail() -> None:
    def child(seconds: float, rss: float, **summary: int) -> ChildRun:
        return ChildRun(["photobatch"], seconds, seconds, rss, summary)

    result = BenchResult(
        machine=Machine.current(),
        decode=DecodeResult(photos=32, megapixels=12.0, megabytes=3.1, seconds=2.4, cpu_seconds=2),
        scan=child(48.0, 1200.0, found=32, analyzed=32),
        rescan=child(1.5, 90.0, found=20_000, unchanged=20_000, analyzed=0),
        command="photobatch bench --photos 32 --small-files 20000",
    )
    header, rule, row = result.table().splitlines()
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert [c.strip() for c in header.strip("|").split(" | ")] == list(TABLE_COLUMNS)
    assert rule.count("---") == len(TABLE_COLUMNS) == len(cells)
    assert all(cells)
    assert cells[4].startswith("20.00 FAIL") and cells[6].startswith("1200 pass")
    assert "20,000 files pass" in cells[7]  # 1.5 s against 10 s scaled to 20,000 files: 2 s
    assert result.table(header=False) == row
    data = json.loads(json.dumps(result.as_dict()))
    assert data["checks"] == {
        "ratio": False,
        "photos_per_s": False,
        "peak_rss": True,
        "noop_rescan": True,
    }
    assert data["noop_rescan"]["analysed"] == 0
