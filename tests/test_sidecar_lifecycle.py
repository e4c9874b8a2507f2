"""A sidecar exists while photobatch has something to say about its photo, and goes with the
photo when photobatch alone wrote it; what the user or another application wrote always stays.

Real scans in-process with stand-in models whose answer each test sets; sidecars are read back
with exiftool, as the user's photo tools would.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_bad_input import photo

from photobatch.core.config import load_config
from photobatch.core.records import Analysis
from photobatch.library.index import Index
from photobatch.scan.pipeline import Scanner


class Answer:
    """Stand-in models that say what ``SAYS`` holds: a caption and hashtags, or nothing."""

    device = torch.device("cpu")
    personal = SimpleNamespace(id=None)
    says: tuple[str | None, list[str]] = ("a cat on a mat", ["cat", "mat"])

    @property
    def models(self) -> str:
        return f"stand-in {self.says}"  # another answer is another model version

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, hashes: list[str], images: list[object]) -> list[Analysis]:
        caption, tags = self.says
        source = "sat" if caption else "none"
        return [
            Analysis(h, [], caption, list(tags), models=self.models, caption_source=source,
                     caption_confidence=0.9 if caption else None)
            for h in hashes
        ]  # fmt: skip


def scan(tmp_path: Path, root: Path, says: tuple[str | None, list[str]], **sidecars: object):
    Answer.says = says
    config = load_config(None, index=tmp_path / "index.db")
    config = replace(config, sidecars=replace(config.sidecars, **sidecars))
    with Index(config.index) as index:
        return Scanner(config, index, progress=False, analyzer_factory=Answer).scan([root])


def exiftool(path: Path) -> dict:
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Subject", "-XMP-dc:Description", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)[0]


@pytest.fixture
def root(tmp_path: Path, research_data: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(research_data, "DSCN0010.jpg").save(folder / "a.jpg")
    return folder


NOTHING: tuple[None, list[str]] = (None, [])


@pytest.mark.parametrize("formats", [("xmp",), ("json",)])
def test_a_photo_with_nothing_to_say_gets_no_sidecar(
    tmp_path: Path, root: Path, formats: tuple[str, ...]
) -> None:
    """430 bytes of empty XMP packet beside every such photo were only clutter."""
    summary = scan(tmp_path, root, NOTHING, formats=formats)
    assert summary.new == 1 and summary.sidecar_problems == 0
    assert sorted(p.name for p in root.iterdir()) == ["a.jpg"]


def test_a_sidecar_photobatch_alone_wrote_goes_when_it_has_nothing_more_to_say(
    tmp_path: Path, root: Path
) -> None:
    scan(tmp_path, root, ("a cat on a mat", ["cat"]))
    assert exiftool(root / "a.jpg.xmp")["Subject"] == "cat"
    scan(tmp_path, root, NOTHING)  # other models: analysed again, and nothing to say now
    assert not (root / "a.jpg.xmp").exists()


def test_with_nothing_to_say_photobatchs_part_goes_and_the_users_stays(
    tmp_path: Path, root: Path
) -> None:
    scan(tmp_path, root, ("a cat on a mat", ["cat"]))
    sidecar = root / "a.jpg.xmp"
    subprocess.run(["exiftool", "-overwrite_original", "-XMP-dc:Subject+=grandma", str(sidecar)],
                   check=True, capture_output=True)  # fmt: skip
    scan(tmp_path, root, NOTHING)
    tags = exiftool(sidecar)
    assert tags.get("Subject") == "grandma" and "Description" not in tags


@pytest.mark.parametrize("formats", [("xmp",), ("json",)])
def test_a_deleted_photos_sidecar_goes_only_if_photobatch_alone_wrote_it(
    tmp_path: Path, research_data: Path, root: Path, formats: tuple[str, ...]
) -> None:
    photo(research_data, "DSCN0012.jpg").save(root / "b.jpg")
    says = ("a cat on a mat", ["cat"])
    scan(tmp_path, root, says, formats=formats)
    ours, shared = root / f"a.jpg.{formats[0]}", root / f"b.jpg.{formats[0]}"
    if formats == ("xmp",):
        subprocess.run(["exiftool", "-overwrite_original", "-XMP-xmp:Rating=4", str(shared)],
                       check=True, capture_output=True)  # fmt: skip
    else:
        shared.write_text(json.dumps({**json.loads(shared.read_text()), "album": "2009"}))
    before = shared.read_bytes()
    (root / "a.jpg").unlink()
    (root / "b.jpg").unlink()
    summary = scan(tmp_path, root, says, formats=formats)
    assert summary.missing == 2 and summary.sidecar_problems == 0
    assert not ours.exists()
    assert shared.read_bytes() == before  # the user's rating is theirs: left exactly as it was
