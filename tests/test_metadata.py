"""EXIF reading against exiftool on real camera files, and survival of garbage EXIF."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from photobatch.core.records import PhotoMetadata
from photobatch.library.metadata import read_metadata


def _samples(research_data: Path) -> Path:
    return research_data / "exif-samples"


def _exiftool(paths: list[Path]) -> dict[str, dict]:
    out = subprocess.run(
        ["exiftool", "-n", "-j", "-GPSLatitude", "-GPSLongitude", "-DateTimeOriginal", *paths],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {Path(row["SourceFile"]).name: row for row in json.loads(out)}


def test_gps_and_date_agree_with_exiftool(research_data: Path) -> None:
    photos = sorted((_samples(research_data) / "jpg" / "gps").glob("*.jpg"))
    assert len(photos) >= 9
    truth = _exiftool(photos)
    for path in photos:
        meta = read_metadata(path)
        expected = truth[path.name]
        assert meta.warning is None, path.name
        assert meta.lat == pytest.approx(expected["GPSLatitude"], abs=1e-7), path.name
        assert meta.lon == pytest.approx(expected["GPSLongitude"], abs=1e-7), path.name
        date, time = expected["DateTimeOriginal"].split(" ")
        assert meta.taken_at == f"{date.replace(':', '-')}T{time}", path.name


def test_every_sample_gives_metadata_or_a_warning(research_data: Path) -> None:
    files = [p for p in sorted(_samples(research_data).rglob("*")) if p.is_file()]
    assert len(files) > 100
    for path in files:
        meta = read_metadata(path)  # must never raise
        assert isinstance(meta, PhotoMetadata)
        assert meta.warning or (meta.width and meta.height), path
        assert 1 <= meta.orientation <= 8


def test_orientation_and_displayed_size(research_data: Path) -> None:
    folder = _samples(research_data) / "jpg" / "orientation"
    for kind, size in (("landscape", (600, 450)), ("portrait", (450, 600))):
        for n in range(1, 9):
            meta = read_metadata(folder / f"{kind}_{n}.jpg")
            assert meta.orientation == n
            assert (meta.width, meta.height) == size, (kind, n)


def test_phone_files_with_offset_lens_and_southwest_gps(research_data: Path) -> None:
    iphone = read_metadata(_samples(research_data) / "heic" / "IMG_5195.HEIC")
    assert iphone.taken_at == "2021-04-11T15:47:53-05:00"
    assert (iphone.camera_make, iphone.camera_model) == ("Apple", "iPhone 11 Pro Max")
    assert iphone.lens == "Apple iPhone 11 Pro Max back triple camera 4.25mm f/1.8"
    assert iphone.lat == pytest.approx(39.0513444, abs=1e-6)
    assert iphone.lon == pytest.approx(-94.2887722, abs=1e-6)  # ref W
    # HEIF: the decoder applies the rotation, so the header size is already as displayed.
    rotated = read_metadata(_samples(research_data) / "heic" / "mobile" / "iphone_13_pro_max.HEIC")
    assert rotated.orientation == 6
    assert (rotated.width, rotated.height) == (3024, 4032)
    assert rotated.taken_at == "2022-02-16T12:55:41+01:00"
    kodak = read_metadata(_samples(research_data) / "jpg" / "Kodak_CX7530.jpg")
    assert kodak.lat == pytest.approx(-0.3713, abs=1e-6)  # ref S


def _jpeg_with_exif(path: Path, *, orientation: int, dates: dict[int, str], gps: dict) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "  Canon  "
    exif[0x0110] = "Canon EOS R6\x00"
    exif[0x0112] = orientation
    exif_ifd = exif.get_ifd(0x8769)
    for tag, value in dates.items():
        (exif if tag == 0x0132 else exif_ifd)[tag] = value
    exif.get_ifd(0x8825).update(gps)
    Image.new("RGB", (300, 200)).save(path, exif=exif)
    return path


def test_garbage_exif_keeps_what_is_readable(tmp_path: Path) -> None:
    path = _jpeg_with_exif(
        tmp_path / "garbage.jpg",
        orientation=9,
        dates={0x9003: "garbage date", 0x0132: "2020:13:45 99:00:00"},
        gps={
            1: "N",
            2: (IFDRational(10, 1), IFDRational(30, 1), IFDRational(0, 1)),
            3: "E",
            4: (IFDRational(20, 1), IFDRational(5, 0), IFDRational(0, 1)),  # 5/0 minutes
        },
    )
    meta = read_metadata(path)
    assert (meta.camera_make, meta.camera_model) == ("Canon", "Canon EOS R6")
    assert (meta.taken_at, meta.lat, meta.lon, meta.orientation) == (None, None, None, 1)
    assert (meta.width, meta.height) == (300, 200)
    assert meta.warning is not None
    for words in ("DateTimeOriginal", "GPS", "orientation 9"):
        assert words in meta.warning


def test_fallback_date_offset_and_unknown_seconds(tmp_path: Path) -> None:
    path = _jpeg_with_exif(
        tmp_path / "ok.jpg",
        orientation=8,
        dates={0x9004: "2019:06:01 08:09:10", 0x9012: "+05:30", 0x0132: "2020:01:01 00:00:00"},
        gps={
            1: "S",
            2: (IFDRational(10, 1), IFDRational(30, 1), IFDRational(0, 0)),  # 0/0: "not set"
            3: "W",
            4: (IFDRational(20, 1), IFDRational(15, 1), IFDRational(36, 1)),
        },
    )
    meta = read_metadata(path)
    assert meta.warning is None
    assert meta.taken_at == "2019-06-01T08:09:10+05:30"  # DateTimeDigitized, its own offset
    assert meta.lat == pytest.approx(-10.5)
    assert meta.lon == pytest.approx(-(20 + 15 / 60 + 36 / 3600))
    assert (meta.orientation, meta.width, meta.height) == (8, 200, 300)


def test_not_an_image_and_missing_file_warn(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    assert read_metadata(text).warning == "not an image, or a format photobatch cannot read"
    missing = read_metadata(tmp_path / "gone.jpg")
    assert missing.warning is not None and missing.warning.startswith("cannot read file")


def test_heic_exif_read_from_two_threads_at_once_is_never_lost(research_data: Path) -> None:
    """exifread's HEIF parser shares state across threads: 104 losses in 100 rounds unlocked."""
    samples = research_data / "exif-samples" / "heic"
    heics = sorted(p for p in samples.rglob("*") if p.suffix.lower() in {".heic", ".heif"})
    serial = {p: read_metadata(p) for p in heics}
    assert any(m.taken_at and m.camera_make for m in serial.values())
    with ThreadPoolExecutor(2) as pool:
        for _ in range(30):
            parallel = pool.map(read_metadata, heics + heics[::-1])
            assert list(parallel) == [serial[p] for p in heics + heics[::-1]]
