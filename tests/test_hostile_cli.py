"""Broken settings, model files and output paths end as one line naming the file, exit 1.

Each runs the real command line (click's CliRunner): one stderr line, no traceback, exit 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import one_line
from click.testing import CliRunner, Result

from photobatch.cli import cli
from photobatch.core.records import Post
from photobatch.library.index import Index

PHOTO = "1000268201_693b08cb0e.jpg"


def run(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])


@pytest.fixture
def library(research_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    shutil.copyfile(research_data / "flickr8k" / "images" / PHOTO, folder / "dog.jpg")
    return folder


def test_a_latin1_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes("# réglages\ndevice: cpu\n".encode("latin-1"))
    line = one_line(run(tmp_path, "--config", str(config), "status"))
    assert line == (
        f"photobatch: {config}: not UTF-8 text (byte 0xe9 at offset 3): save the config file as "
        "UTF-8"
    )


def test_export_into_a_folder_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    Index(tmp_path / "index.db").close()
    target = tmp_path / "nonexistent" / "x.csv"
    line = one_line(run(tmp_path, "export", "--format", "csv", "-o", str(target)))
    assert line == f"photobatch: {target}: cannot write the export: No such file or directory"


def test_device_cuda_without_cuda_is_one_line(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = one_line(run(tmp_path, "scan", "--device", "cuda", str(library)))
    assert line.startswith("photobatch: device 'cuda' was asked for but CUDA is not available")


def test_a_damaged_personal_head_is_one_line_in_status_and_scan(
    tmp_path: Path, library: Path
) -> None:
    with Index(tmp_path / "index.db") as index:  # a head is only read once posts exist
        posts = [Post(f"p{i}", None, "#dog", ["dog"]) for i in range(10)]  # enough to train
        index.write_posts(posts)
    head = tmp_path / "index.db.personal" / "personalizer.pt"
    head.parent.mkdir()
    head.write_bytes(b"PK\x03\x04 half of a personal head")
    expected = f"photobatch: {head}: cannot read this personal head (RuntimeError: "
    assert one_line(run(tmp_path, "status")).startswith(expected)
    assert one_line(run(tmp_path, "scan", "--device", "cpu", str(library))).startswith(expected)


def test_a_rescan_still_counts_the_unreadable_files_it_skipped(tmp_path: Path) -> None:
    """A cron log that said "0 unreadable" while error rows remained hid them."""
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    first = run(tmp_path, "scan", "--no-sidecars", str(folder))
    assert first.exit_code == 0 and "1 unreadable" in first.output, first.output
    again = run(tmp_path, "scan", "--no-sidecars", str(folder))
    assert again.exit_code == 0, again.output
    assert "1 unchanged, 0 unreadable, 1 still unreadable, 0 missing" in again.output
    assert "1 found, 0 analysed, 1 unreadable, 0 missing" in run(tmp_path, "status").stdout


def test_a_file_name_with_a_newline_cannot_forge_a_log_line(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    forged = "x.jpg\nphotobatch: 0 photos: 0 new, 0 unreadable\r\t.jpg"
    (folder / forged).write_bytes(b"\xff\xd8\xff not a photo")
    result = run(tmp_path, "scan", "--no-sidecars", "--quiet", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"photobatch: {folder}/x.jpg\\nphotobatch: 0 photos: 0 new, 0 unreadable\\r\\t.jpg: "
        "not an image, or a format photobatch cannot read"
    ]


def test_a_file_name_with_a_newline_cannot_forge_a_watch_log_line() -> None:
    """``watch`` logs through ``logging``; its lines are escaped as ``warn`` escapes them."""
    import logging

    from photobatch.cli.base import OneLineLog

    record = logging.LogRecord(
        "photobatch.watch",
        logging.INFO,
        __file__,
        1,
        "processed %s",
        ("a\nphotobatch: 0 new",),
        None,
    )
    line = OneLineLog("%(name)s: %(message)s").format(record)
    assert line == "photobatch.watch: processed a\\nphotobatch: 0 new"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--settle", "nan"], "'--settle' must be a finite number, not nan"),
        (["watch", "--settle", "1e400"], "'--settle' must be a finite number, not inf"),
        (["watch", "--settle", "90000"], "'--settle' must be a number from 0 to 86400"),
        (
            ["scan", "--engine", "ray", "--ray-address", "h" * 300 + ":6379"],
            "does not name a host (at most 253 characters",
        ),
    ],
)
def test_command_line_numbers_and_hosts_are_checked_as_the_configs(
    tmp_path: Path, library: Path, args: list[str], message: str
) -> None:
    line = one_line(run(tmp_path, *args, str(library)))
    assert message in line and len(line) < 300
    assert not (tmp_path / "index.db").exists()  # refused before anything was opened


def test_a_config_number_of_5000_digits_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"batch_size: {'9' * 5000}\n")
    line = one_line(run(tmp_path, "--config", str(config), "status"))
    assert line.startswith(f"photobatch: {config}: not a usable config: Exceeds the limit")
