"""A library's odd corners that once stopped or misled a scan: a RAW file whose name is not
UTF-8, a folder that becomes unreadable between two scans, a path that is not a photo.

In-process with the real pipeline and a stand-in for the models (the models are beside the
point here), except where the command line itself is what is tested.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import one_line
from click.testing import CliRunner
from dng import write_dng
from PIL import Image
from test_bad_input import scanner

from photobatch.cli import cli


def test_a_raw_file_whose_name_is_not_utf8_is_indexed_with_the_rest(
    tmp_path: Path, research_data: Path
) -> None:
    """rawpy encodes a path as strict UTF-8: a NEF named in Latin-1 by an old card reader raised
    in every scan, before any of the batch was committed, for good."""
    library = tmp_path / "photos"
    library.mkdir()
    for source in sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:10]:
        shutil.copyfile(source, library / source.name)
    camera = Image.open(research_data / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg")
    raw = Path(os.fsdecode(os.fsencode(library) + b"/DSC_caf\xe9.NEF"))
    write_dng(raw, camera.convert("RGB"))  # a DNG: LibRaw reads it by content, as a NEF
    scan, index = scanner(tmp_path)
    summary = scan.scan([library])
    assert (summary.new, summary.analyzed, summary.errors) == (11, 11, 0), summary.problems
    record = index.record(raw)
    assert record is not None and record.status == "ok"
    assert record.metadata.width and record.metadata.height  # read by LibRaw, by its name
    index.close()


def test_a_folder_unreadable_in_a_later_scan_is_counted_unreadable_not_missing(
    tmp_path: Path, research_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its photos keep their results and status; the summary counts them as unreadable."""
    from photobatch.library import discovery

    library = tmp_path / "photos"
    (library / "2019").mkdir(parents=True)
    sources = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))
    for source in sources[:3]:
        shutil.copyfile(source, library / "2019" / source.name)
    shutil.copyfile(sources[3], library / sources[3].name)
    scan, index = scanner(tmp_path)
    assert scan.scan([library]).new == 4
    listing = os.scandir

    def locked(path: object) -> object:  # what chmod 000 does, for any user (root included)
        if Path(os.fspath(path)) == library / "2019":  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))  # type: ignore[arg-type]
        return listing(path)  # type: ignore[arg-type]

    monkeypatch.setattr(discovery.os, "scandir", locked)
    again = scan.scan([library])
    assert (again.errors, again.missing, again.unchanged) == (3, 0, 1)
    assert again.problems == [f"{library / '2019'}: cannot read: Permission denied"]
    assert "3 unreadable, 0 missing" in again.line()
    statuses = {Path(r["path"]).name: r["status"] for r in index.export_rows()}
    assert set(statuses.values()) == {"ok"}
    index.close()


def test_scanning_a_file_that_is_not_a_photo_is_refused_in_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), "scan", str(notes)])
    assert one_line(result) == (
        f"photobatch: {notes}: not a photo (by its name) nor a folder: photobatch scans photos "
        "(.jpg, .heic, a camera's RAW...) and folders of them"
    )
    status = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), "status"])
    assert "0 ok, 0 error, 0 missing" in status.output and "last scan: never" in status.output


def test_pillows_warnings_about_a_photo_are_recorded_with_it_not_printed(
    tmp_path: Path, research_data: Path
) -> None:
    """A truncated EXIF block made Pillow print two raw warnings (file, line, source) into the
    scan's output; they are the photo's warning now, as exifread's complaints are."""
    import io
    import subprocess
    import sys

    library = tmp_path / "photos"
    library.mkdir()
    camera = Image.open(research_data / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg")
    # One IFD entry (Make, 255 ASCII bytes) pointing past the end of the EXIF block.
    exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x0f\x01\x02\0\xff\0\0\0\x10\0\0\0\0\0\0\0"
    buffer = io.BytesIO()
    camera.save(buffer, "JPEG", exif=exif)
    (library / "broken-exif.jpg").write_bytes(buffer.getvalue())
    index = tmp_path / "index.db"
    command = [sys.executable, "-m", "photobatch", "--index", str(index)]
    scan = subprocess.run(
        [*command, "scan", "--no-sidecars", str(library)], capture_output=True, text=True
    )
    assert scan.returncode == 0 and scan.stderr == "", scan.stderr
    shown = subprocess.run(
        [*command, "show", "--json", str(library / "broken-exif.jpg")], capture_output=True
    )
    warning = json.loads(shown.stdout)["warning"]
    assert "Tag data larger than file" in warning and "Warning" not in warning
