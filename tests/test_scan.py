"""End to end: `photobatch scan` on a copy of the real camera corpus, read back by real clients.

One scan of ``../shared/data/exif-samples`` (copied: originals there are never ours to touch) is
shared by the tests of this module; each later test works on what that scan left.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from photobatch.cli import cli
from photobatch.core.lock import EX_TEMPFAIL, ScanLock
from photobatch.library.discovery import IMAGE_EXTENSIONS

USER_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4">
   <dc:subject><rdf:Bag><rdf:li>holiday 2009</rdf:li><rdf:li>grandma</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photobatch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def exiftool(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["exiftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() not in {".xmp", ".json"}
    }


def image_files(root: Path) -> set[str]:
    """Image files as a person would count them, independently of photobatch's walker."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.add(os.path.join(folder, name))
    return found


def export_photos(index: Path) -> dict[str, dict[str, str]]:
    result = CliRunner().invoke(cli, ["--index", str(index), "export", "--format", "csv"])
    assert result.exit_code == 0, result.output
    return {row["path"]: row for row in csv.DictReader(io.StringIO(result.output))}


@pytest.fixture(scope="module")
def library(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("library") / "photos"
    shutil.copytree(research_data / "exif-samples", root)
    broken = root / "broken"
    broken.mkdir()
    (broken / "truncated.jpg").write_bytes((root / "jpg" / "Canon_40D.jpg").read_bytes()[:3000])
    (broken / "empty.JPG").write_bytes(b"")
    (broken / "notes.jpeg").write_text("not a photo at all\n")
    user_sidecar = root / "jpg" / "Canon_40D.jpg.xmp"
    user_sidecar.write_text(USER_XMP, encoding="utf-8")
    before = digest_tree(root)
    index = root.parent / "index.db"
    first = run("--index", str(index), "scan", str(root))
    assert first.returncode == 0, first.stderr
    return {"root": root, "index": index, "before": before, "first": first}


def test_every_image_file_is_exported_indexed_or_with_its_error(library: dict) -> None:
    rows = export_photos(library["index"])
    assert set(rows) == image_files(library["root"])
    statuses = {row["status"] for row in rows.values()}
    assert statuses <= {"ok", "error"}
    for row in rows.values():
        if row["status"] == "error":
            assert row["error"], row
        else:
            # Grounding writes no caption (and only evidenced tags) where it is unsure.
            assert row["caption_source"] in {"sat", "sat-weak", "concept", "scene", "none"}, row
            tags = row["hashtags"].split()
            assert all(t.startswith("#") and len(t) > 1 for t in tags), row
            assert not row["caption"] or len(tags) >= 3, row
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) > 0.9 * len(rows)
    assert sum(bool(r["caption"]) for r in ok) > 0.5 * len(ok)
    for name in ("truncated.jpg", "empty.JPG", "notes.jpeg"):
        row = rows[str(library["root"] / "broken" / name)]
        assert row["status"] == "error" and name in row["error"], row
        assert not (library["root"] / "broken" / (name + ".xmp")).exists()


def test_summary_line_counts_what_happened(library: dict) -> None:
    line = library["first"].stdout.strip().splitlines()[-1]
    rows = export_photos(library["index"])
    errors = sum(r["status"] == "error" for r in rows.values())
    assert line.startswith(f"photobatch: {len(rows)} photos: {len(rows)} new")
    assert f"{errors} unreadable" in line


def test_gps_and_time_agree_with_exiftool(library: dict) -> None:
    rows = export_photos(library["index"])
    gps_dir = library["root"] / "jpg" / "gps"
    photos = [str(p) for p in sorted(gps_dir.glob("*.jpg"))]
    truth = exiftool("-n", "-GPSLatitude", "-GPSLongitude", "-DateTimeOriginal", *photos)
    checked = 0
    for entry in truth:
        row = rows[str(Path(str(entry["SourceFile"])).absolute())]
        if "GPSLatitude" in entry:
            assert float(row["lat"]) == pytest.approx(float(entry["GPSLatitude"]), abs=1e-5)
            assert float(row["lon"]) == pytest.approx(float(entry["GPSLongitude"]), abs=1e-5)
            checked += 1
        if "DateTimeOriginal" in entry:
            expected = str(entry["DateTimeOriginal"]).replace(":", "-", 2).replace(" ", "T")
            assert row["taken_at"].startswith(expected)
    assert checked >= 3


def test_sidecars_are_read_by_exiftool(library: dict) -> None:
    rows = export_photos(library["index"])
    checked = 0
    for path, row in rows.items():
        if row["status"] != "ok" or "Canon_40D.jpg" in path:
            continue
        keywords = [t.lstrip("#") for t in row["hashtags"].split()]
        confident = row["caption"] and float(row["caption_confidence"]) >= 0.3
        if not keywords and not confident:  # nothing to say: no sidecar at all
            assert not os.path.lexists(path + ".xmp"), path
            continue
        [tags] = exiftool(
            "-XMP-dc:Subject", "-XMP-dc:Description", "-XMP-lr:HierarchicalSubject", path + ".xmp"
        )
        assert as_list(tags.get("Subject")) == keywords
        assert as_list(tags.get("HierarchicalSubject")) == [f"photobatch|{k}" for k in keywords]
        assert tags.get("Description") == (row["caption"] if confident else None)
        checked += 1
    assert checked > 10


def test_users_own_sidecar_keywords_survive_two_scans(library: dict) -> None:
    sidecar = library["root"] / "jpg" / "Canon_40D.jpg.xmp"
    for _ in range(2):
        os.utime(library["root"] / "jpg" / "Canon_40D.jpg")  # force it to be looked at again
        rescan = run("--index", str(library["index"]), "scan", "--quiet", str(library["root"]))
        assert rescan.returncode == 0, rescan.stderr
    [tags] = exiftool("-XMP-dc:Subject", "-XMP-xmp:Rating", str(sidecar))
    subjects = as_list(tags.get("Subject"))
    assert {"holiday 2009", "grandma"} <= set(subjects)
    assert tags.get("Rating") == 4
    row = export_photos(library["index"])[str(library["root"] / "jpg" / "Canon_40D.jpg")]
    assert {t.lstrip("#") for t in row["hashtags"].split()} <= set(subjects)


def test_originals_are_byte_identical(library: dict) -> None:
    assert digest_tree(library["root"]) == library["before"]


def test_rescan_of_unchanged_library_does_no_model_work(library: dict) -> None:
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from photobatch.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['--index', {str(library['index'])!r}, 'scan', "
        f"{str(library['root'])!r}])\n"
        "print(r.output)\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'a no-op rescan imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 new, 0 changed" in out.stdout and "; 0 analysed" in out.stdout
    assert "re-analysed" not in out.stdout  # the stored model versions are the current ones


def test_moved_photo_keeps_its_results_without_model_work(library: dict) -> None:
    root = library["root"]
    old = root / "jpg" / "Nikon_D70.jpg"
    caption = export_photos(library["index"])[str(old)]["caption"]
    new = root / "moved" / "renamed.JPG"
    new.parent.mkdir()
    shutil.move(old, new)
    try:
        result = run("--index", str(library["index"]), "scan", str(root))
        assert result.returncode == 0, result.stderr
        assert "1 reused" in result.stdout and "; 0 analysed" in result.stdout
        rows = export_photos(library["index"])
        assert rows[str(new)]["caption"] == caption
        assert rows[str(old)]["status"] == "missing"
    finally:
        shutil.move(new, old)


def test_second_scan_on_a_locked_index_exits_75_naming_the_lock(library: dict) -> None:
    with ScanLock(library["index"]):
        result = run("--index", str(library["index"]), "scan", str(library["root"]))
    assert result.returncode == EX_TEMPFAIL
    assert str(library["index"]) + ".lock" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_and_show_report_what_the_scan_found(library: dict) -> None:
    index = str(library["index"])
    status = CliRunner().invoke(cli, ["--index", index, "status"])
    assert status.exit_code == 0 and "last scan:" in status.output
    photo = library["root"] / "jpg" / "gps" / "DSCN0010.jpg"
    shown = CliRunner().invoke(cli, ["--index", index, "show", "--json", str(photo)])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info["path"] == str(photo) and info["lat"] is not None
