"""Every kind of bad input a real library holds: recorded with a clear error, the scan goes on.

One real ``photobatch scan`` (a subprocess, as cron runs it) over a library built in tmp_path
holds every case; the tests of this module read what it left. Vanishing files and a full disk
need a precise moment, so they run in-process with the real pipeline and a stand-in for the
models (the models are beside the point there).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from dng import write_dng
from PIL import Image

from photobatch.core.config import load_config
from photobatch.core.records import Analysis
from photobatch.library.index import Index
from photobatch.scan.pipeline import Scanner

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:subject><rdf:Bag><rdf:li>&lol3;</rdf:li></rdf:Bag></dc:subject></rdf:Description>
</rdf:RDF></x:xmpmeta>
"""
MALFORMED_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><unclosed>'
NON_UTF8 = os.fsdecode(b"caf\xe9 \xff.jpg")
ODD_NAMES = ["sp ace & 'quote'.jpg", "ünïcødé 📷.JPG", "-dash.jpeg", "new\nline.jpg"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb() -> bytes:
    """A 30000x30000 PNG header (900 MP, over twice Pillow's limit) over a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 30001 * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def huge_exif() -> bytes:
    """A 60 kB EXIF block whose IFD claims 65535 entries of 2 GB strings at wild offsets."""
    entry = struct.pack("<HHII", 0x010F, 2, 0x7FFFFFFF, 0xFFFFFFF0)
    tiff = b"II*\0" + struct.pack("<IH", 8, 0xFFFF) + entry * 5000
    return b"Exif\0\0" + tiff


def photo(research_data: Path, name: str) -> Image.Image:
    return Image.open(research_data / "exif-samples" / "jpg" / "gps" / name).convert("RGB")


def build_library(root: Path, research_data: Path) -> dict[str, Path]:
    """Every bad-input case as a file under ``root``; returns case name -> path."""
    samples = research_data / "exif-samples" / "jpg"
    good = (samples / "gps" / "DSCN0010.jpg").read_bytes()
    base = photo(research_data, "DSCN0012.jpg")
    root.mkdir()
    cases: dict[str, Path] = {}

    def add(case: str, name: str, data: bytes) -> None:
        cases[case] = root / name
        cases[case].write_bytes(data)

    def add_image(case: str, name: str, image: Image.Image, fmt: str, **options: object) -> None:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        add(case, name, buffer.getvalue())

    add("good", "good.jpg", good)
    add("truncated", "truncated.jpg", good[: len(good) // 3])
    add("header only", "header_only.jpg", good[:2000])
    add("corrupt", "corrupt.jpg", good[:20] + bytes(range(256)) * 40)
    add("zero bytes", "empty.jpg", b"")
    add("text as jpg", "notes.jpg", b"shopping list: milk, eggs\n" * 20)
    add_image("png named jpg", "actually_png.jpg", base.rotate(90), "PNG")
    add("bomb", "bomb.png", decompression_bomb())
    add_image("cmyk", "cmyk.jpg", base.convert("CMYK"), "JPEG")
    add_image(
        "16-bit", "gray16.png", base.convert("L").point(lambda v: v * 200).convert("I;16"), "PNG"
    )
    add_image("palette", "palette.png", base.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    rgba = base.rotate(45).convert("RGBA")
    add_image("alpha", "alpha.png", rgba, "PNG")
    add_image("huge exif", "huge_exif.jpg", base.rotate(180), "JPEG", exif=huge_exif())
    add(
        "malformed exif",
        "malformed_exif.jpg",
        (samples / "tests" / "36-memory_error.jpg").read_bytes(),
    )
    for n, name in enumerate(ODD_NAMES):
        add_image(f"odd name {n}", name, base.rotate(10 * (n + 1)), "JPEG")
    add_image("non-utf8 name", NON_UTF8, base.rotate(123), "JPEG")
    add_image("permission denied", "locked.jpg", base.rotate(200), "JPEG")
    cases["permission denied"].chmod(0)
    cases["symlink loop"] = root / "loop.jpg"
    cases["symlink loop"].symlink_to("loop.jpg")
    cases["dangling symlink"] = root / "dangling.jpg"
    cases["dangling symlink"].symlink_to("gone.jpg")
    (root / "folder_loop").symlink_to(".", target_is_directory=True)
    add_image("malformed sidecar", "user_broken.jpg", base.rotate(300), "JPEG")
    (root / "user_broken.jpg.xmp").write_bytes(MALFORMED_XMP)
    add_image("entity attack", "attacked.jpg", base.rotate(310), "JPEG")
    (root / "attacked.jpg.xmp").write_bytes(BILLION_LAUGHS)
    cases["raw"] = root / "IMG_0001.DNG"
    write_dng(cases["raw"], photo(research_data, "DSCN0021.jpg"), orientation=6)
    add("raw truncated", "IMG_0002.ARW", cases["raw"].read_bytes()[:1500])
    add_image("jpeg named CR2", "IMG_0003.CR2", base.rotate(330), "JPEG")
    return cases


@pytest.fixture(scope="module")
def scanned(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("bad") / "library"
    cases = build_library(root, research_data)
    sidecars = {p: p.read_bytes() for p in root.glob("*.xmp")}
    index = root.parent / "index.db"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    scan = subprocess.run(
        [sys.executable, "-m", "photobatch", "--index", str(index), "scan", str(root)],
        capture_output=True,
        env=env,
        timeout=600,
    )
    export = subprocess.run(
        [sys.executable, "-m", "photobatch", "--index", str(index), "export", "--format", "csv"],
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    )
    # The CSV carries file names as their own bytes: read it back the same way.
    text = export.stdout.decode("utf-8", "surrogateescape")
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(text, newline=""))}
    return {
        "root": root,
        "cases": cases,
        "scan": scan,
        "stderr": scan.stderr.decode("utf-8", "replace"),
        "rows": rows,
        "sidecars": sidecars,
    }


def test_scan_survives_everything_and_records_every_file(scanned: dict) -> None:
    assert scanned["scan"].returncode == 0, scanned["stderr"]
    assert "Traceback" not in scanned["stderr"]
    cases, rows = scanned["cases"], scanned["rows"]
    assert {str(p) for p in cases.values()} <= set(rows)
    assert {row["status"] for row in rows.values()} == {"ok", "error"}


ERRORS = {
    "truncated": "truncated",
    "header only": "truncated",
    "corrupt": "",
    "zero bytes": "empty file (0 bytes)",
    "text as jpg": "not an image",
    "bomb": "decompression bomb",
    "symlink loop": "symbolic link loop",
    "dangling symlink": "broken symbolic link",
    "raw truncated": "RAW file",
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_unreadable_files_are_errors_naming_file_and_problem(scanned: dict, case: str) -> None:
    path = scanned["cases"][case]
    row = scanned["rows"][str(path)]
    assert row["status"] == "error", row
    assert str(path) in row["error"] and ERRORS[case] in row["error"], row["error"]


OK = ["good", "png named jpg", "cmyk", "16-bit", "palette", "alpha", "huge exif"]
OK += ["malformed exif", "non-utf8 name", "jpeg named CR2", "raw", "malformed sidecar"]
OK += ["entity attack", *(f"odd name {n}" for n in range(len(ODD_NAMES)))]


@pytest.mark.parametrize("case", OK)
def test_odd_but_readable_files_are_captioned(scanned: dict, case: str) -> None:
    row = scanned["rows"][str(scanned["cases"][case])]
    assert row["status"] == "ok", row
    # The models ran on every one; grounding may write no caption where it is unsure (the
    # 16-bit copy is saturated to near white, a tilted copy has black corners).
    assert row["caption_source"] in {"sat", "sat-weak", "concept", "scene", "none"}, row
    if row["caption"] or case == "good":
        assert row["caption"] and row["hashtags"].startswith("#")


def test_permission_denied_is_an_error_for_users_who_cannot_read(scanned: dict) -> None:
    row = scanned["rows"][str(scanned["cases"]["permission denied"])]
    if os.geteuid() == 0:  # root reads a mode-000 file: that it was processed is the check
        assert row["status"] == "ok"
    else:
        assert row["status"] == "error" and "Permission denied" in row["error"]


def test_odd_names_get_sidecars_named_after_them(scanned: dict) -> None:
    for case in ("non-utf8 name", "raw", "jpeg named CR2", *(f"odd name {n}" for n in range(4))):
        photo_path = scanned["cases"][case]
        sidecar = photo_path.with_name(photo_path.name + ".xmp")
        row = scanned["rows"][str(photo_path)]
        if not row["hashtags"] and not (row["caption"] and float(row["caption_confidence"]) >= 0.3):
            assert not os.path.lexists(sidecar), sidecar  # nothing to say: no sidecar
            continue
        assert sidecar.is_file(), sidecar
        out = subprocess.run(
            ["exiftool", "-s3", "-XMP-dc:Description", os.fsencode(sidecar)],
            capture_output=True,
            check=True,
        )
        confident = row["caption"] and float(row["caption_confidence"]) >= 0.3
        assert out.stdout.decode().strip() == (row["caption"] if confident else "")


def test_raw_metadata_comes_from_the_raw_file(scanned: dict) -> None:
    row = scanned["rows"][str(scanned["cases"]["raw"])]
    assert (row["camera_make"], row["taken_at"]) == ("Canon", "2021-05-06T07:08:09")
    assert (row["width"], row["height"]) == ("48", "64")  # LibRaw's sensor size, turned by 6


def test_users_broken_and_hostile_sidecars_are_left_untouched(scanned: dict) -> None:
    for sidecar, before in scanned["sidecars"].items():
        assert sidecar.read_bytes() == before
        assert f"{sidecar}: left untouched" in scanned["stderr"]


def test_unreadable_folder_link_loop_does_not_trap_the_walk(scanned: dict) -> None:
    assert not any("folder_loop" in path for path in scanned["rows"])


class StandIn:
    """The models' place in the in-process tests: a fixed, valid result for any photo."""

    device = torch.device("cpu")
    models = "stand-in"
    personal = SimpleNamespace(id=None)  # no personal head

    def load(self) -> None:
        """Nothing to load; the scan calls this from its warm-up thread."""

    def describe(self, hashes: list[str], images: list[object]) -> list[Analysis]:
        tags = ["cat", "mat", "pets"]
        return [Analysis(h, ["cat"], "a cat on a mat", tags, models=self.models) for h in hashes]

    def repersonalize(self, analyses: list[Analysis]) -> list[Analysis]:
        return analyses  # no personal head


def scanner(tmp_path: Path) -> tuple[Scanner, Index]:
    config = load_config(None, index=tmp_path / "index.db")
    index = Index(config.index)
    return Scanner(config, index, progress=False, analyzer_factory=StandIn), index


def test_file_vanishing_mid_scan_ends_missing_not_error(
    tmp_path: Path, research_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photobatch.scan import stages

    root = tmp_path / "photos"
    root.mkdir()
    photo(research_data, "DSCN0010.jpg").save(root / "stays.jpg")
    photo(research_data, "DSCN0012.jpg").save(root / "goes.jpg")
    read = stages.read_metadata

    def read_then_vanish(path: Path) -> object:
        meta = read(path)
        if path.name == "goes.jpg":
            path.unlink()  # deleted after hashing, before decoding: the worst moment
        return meta

    monkeypatch.setattr(stages, "read_metadata", read_then_vanish)
    scan, index = scanner(tmp_path)
    summary = scan.scan([root])
    statuses = {Path(r["path"]).name: r["status"] for r in index.export_rows()}
    assert statuses == {"stays.jpg": "ok", "goes.jpg": "missing"}
    assert (summary.errors, summary.missing) == (0, 1)
    assert not (root / "goes.jpg.xmp").exists()


def test_disk_full_while_writing_a_sidecar_keeps_the_old_one(
    tmp_path: Path, research_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photobatch.library import sidecars

    root = tmp_path / "photos"
    root.mkdir()
    photo(research_data, "DSCN0010.jpg").save(root / "a.jpg")
    old = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n'
    (root / "a.jpg.xmp").write_bytes(old)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sidecars.os, "fsync", disk_full)  # data written, flush to disk fails
    scan, index = scanner(tmp_path)
    summary = scan.scan([root])
    assert (root / "a.jpg.xmp").read_bytes() == old
    assert sorted(p.name for p in root.iterdir()) == ["a.jpg", "a.jpg.xmp"]  # no temp left
    assert summary.sidecar_problems == 1
    assert summary.problems == [
        f"{root / 'a.jpg.xmp'}: cannot write sidecar: No space left on device"
    ]
    assert [r["status"] for r in index.export_rows()] == ["ok"]


def test_copies_of_an_undecodable_photo_are_errors_in_every_batch(
    tmp_path: Path, research_data: Path
) -> None:
    """Copies of one content are analysed once; when that fails, every copy is an error naming
    itself, also those whose batch comes later (none is indexed as a photo without results)."""
    root = tmp_path / "photos"
    root.mkdir()
    buffer = io.BytesIO()
    photo(research_data, "DSCN0010.jpg").save(buffer, "JPEG")
    broken = buffer.getvalue()[: len(buffer.getvalue()) // 3]  # hashes fine, cannot decode
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        (root / name).write_bytes(broken)
    config = replace(load_config(None, index=tmp_path / "index.db"), batch_size=1)
    with Index(config.index) as index:
        Scanner(config, index, progress=False, analyzer_factory=StandIn).scan([root])
        rows = {Path(r["path"]).name: r for r in index.export_rows()}
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(rows, "error")
    assert len(rows) == 4
    first = min(rows)
    for name, row in rows.items():
        assert row["error"].startswith(f"{root / name}: "), row
        assert ("same content as" in row["error"]) == (name != first), row
