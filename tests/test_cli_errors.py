"""Problems the user can fix end as one ``photobatch: ...`` line on stderr, whichever command."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from cli_helpers import one_line
from click.testing import CliRunner, Result

from photobatch.cli import cli
from photobatch.core.lock import EX_TEMPFAIL, ScanLock

PHOTO = "1000268201_693b08cb0e.jpg"


def invoke(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])


def caption_data(research_data: Path, captions: Path, tmp_path: Path) -> list[str]:
    images = research_data / "flickr8k" / "images"
    cache = tmp_path / "cache"
    return ["--captions", str(captions), "--images", str(images), "--cache", str(cache)]


def test_swapped_captions_and_splits_files_name_the_file(
    research_data: Path, tmp_path: Path
) -> None:
    splits = research_data / "flickr8k" / "splits.csv"
    result = invoke(tmp_path, "train", "captioner", *caption_data(research_data, splits, tmp_path))
    expected = f"photobatch: {splits}: expected a CSV with columns 'image,caption'"
    assert one_line(result) == expected
    assert not (tmp_path / "cache").exists()  # stopped before encoding a single photo


def test_a_photo_given_as_captions_is_one_line(research_data: Path, tmp_path: Path) -> None:
    photo = research_data / "flickr8k" / "images" / PHOTO
    args = caption_data(research_data, photo, tmp_path)
    line = one_line(invoke(tmp_path, "evaluate", "captioner", *args))
    assert line.startswith(f"photobatch: {photo}: not a captions file (UnicodeDecodeError")


def test_a_photo_given_as_the_index_is_one_line(research_data: Path, tmp_path: Path) -> None:
    index = tmp_path / "photo.jpg"
    shutil.copyfile(research_data / "flickr8k" / "images" / PHOTO, index)
    before = index.read_bytes()
    result = CliRunner().invoke(cli, ["--index", str(index), "status"])
    assert one_line(result).startswith(f"photobatch: {index}")
    assert index.read_bytes() == before


def test_a_second_scan_exits_75_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with ScanLock(tmp_path / "index.db"):
        result = invoke(tmp_path, "scan", str(tmp_path / "photos"))
    line = one_line(result, EX_TEMPFAIL)
    assert line.startswith("photobatch: another photobatch scan is running on this index")
    assert f"{tmp_path / 'index.db'}.lock" in line


@pytest.mark.parametrize("command", [["train", "captioner"], ["evaluate", "captioner"]])
def test_without_the_research_extra_caption_metrics_commands_say_what_to_install(
    research_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)  # its import now raises ImportError
    captions = research_data / "flickr8k" / "captions.csv"
    result = invoke(tmp_path, *command, *caption_data(research_data, captions, tmp_path))
    assert one_line(result) == (
        f"photobatch: {' '.join(command)} needs the research extra (pycocoevalcap is not "
        "installed): pip install 'photobatch[research]'"
    )
    assert not (tmp_path / "cache").exists()


def test_a_split_the_splits_file_lacks_is_one_line(research_data: Path, tmp_path: Path) -> None:
    flickr = research_data / "flickr8k"
    args = caption_data(research_data, flickr / "captions.csv", tmp_path)
    splits = ["--splits", str(flickr / "splits.csv"), "--split", "test"]
    line = one_line(invoke(tmp_path, "evaluate", "captioner", *args, *splits))
    assert line == f"photobatch: {flickr / 'splits.csv'}: no images in split 'test'"
    assert not (tmp_path / "cache").exists()
