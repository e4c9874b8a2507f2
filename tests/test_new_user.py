"""What a new user meets first: the README's install and cron lines as they are written, run in
the environment they run in, and the commands they try before reading further.

The lines are read out of README.md, and the docs pages that repeat them must repeat them exactly,
so the documentation and the test cannot drift.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cli_helpers import one_line
from click.testing import CliRunner
from test_bad_input import scanner

from photobatch.cli import cli
from photobatch.library.index import Index

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# The pages that repeat the README's cron and link lines (for a reader who starts there).
REPEATED_IN = {"cron": ROOT / "docs" / "scanning.md", "link": ROOT / "docs" / "install.md"}
VENV = "~/.local/share/photobatch-venv"  # where the README installs photobatch
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d "  # --timestamps' local time


def home_with_photobatch(tmp_path: Path) -> Path:
    """A home folder whose README venv is this test's installation (its bin/photobatch)."""
    home = tmp_path / "home"
    venv = home / ".local" / "share" / "photobatch-venv"
    venv.parent.mkdir(parents=True)
    venv.symlink_to(sys.prefix)
    assert (venv / "bin" / "photobatch").exists(), "photobatch is not installed in this venv"
    return home


def as_cron_runs(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``command`` as cron runs it: /bin/sh, and nothing in the environment but a minimal PATH
    and HOME (and, here, the test machine's torch thread count, for a quiet shared CPU)."""
    env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "PHOTOBATCH_TORCH_THREADS=1"]
    return subprocess.run(
        [*env, "/bin/sh", "-c", command], capture_output=True, text=True, timeout=600
    )


def test_the_readmes_cron_line_works_under_crons_environment(
    tmp_path: Path, research_data: Path
) -> None:
    """It said ``photobatch: not found`` (exit 127) under cron's PATH, then, with the PATH fixed,
    wrote nothing to its log (``--quiet``), and nothing with a time."""
    [block] = re.findall(r"```cron\n(.+?)\n```", README, flags=re.S)
    page = REPEATED_IN["cron"].read_text(encoding="utf-8")
    assert re.findall(r"```cron\n(.+?)\n```", page, flags=re.S) == [block]
    fields = block.split(maxsplit=5)
    assert fields[:5] == ["0", "3", "*", "*", "*"], block
    command = fields[5]
    assert "%" not in command  # cron would cut the line there
    assert f"{VENV}/bin/photobatch " in command  # cron's PATH has no photobatch on it
    home = home_with_photobatch(tmp_path)
    (home / "Pictures").mkdir()
    source = next((research_data / "flickr8k" / "images").glob("*.jpg"))
    shutil.copyfile(source, home / "Pictures" / "dog.jpg")
    for night in (1, 2):
        run = as_cron_runs(command, home)
        assert run.returncode == 0 and run.stdout == run.stderr == "", run
        lines = (home / ".local" / "state" / "photobatch.log").read_text().splitlines()
        assert len(lines) == night, lines  # one summary line a night, nothing else
        assert re.fullmatch(STAMP + r"photobatch: 1 photos: .*", lines[-1]), lines[-1]
    assert "1 new" in lines[0] and "1 unchanged" in lines[1]


def test_the_readmes_link_line_works_without_a_bin_folder_and_twice(tmp_path: Path) -> None:
    """``ln -s ... ~/.local/bin/`` failed where that folder did not exist yet."""
    [line] = re.findall(r"`([^`]*ln -s[^`]*)`", README)
    page = REPEATED_IN["link"].read_text(encoding="utf-8")
    assert re.findall(r"`([^`]*ln -s[^`]*)`", page) == [line]
    home = home_with_photobatch(tmp_path)
    assert not (home / ".local" / "bin").exists()
    for _ in range(2):  # and again, as after an upgrade
        run = as_cron_runs(line, home)
        assert run.returncode == 0, run.stderr
    version = as_cron_runs("~/.local/bin/photobatch --version", home)
    assert version.returncode == 0 and version.stdout.startswith("photobatch, version")


def test_show_without_a_photo_lists_the_most_recent_with_their_captions(
    tmp_path: Path, research_data: Path
) -> None:
    """It said "Missing argument 'PHOTO'"."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:12]:
        shutil.copyfile(source, folder / source.name)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    scan, index = scanner(tmp_path)
    scan.scan([folder])
    index.close()
    args = ["--index", str(tmp_path / "index.db"), "show"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    head, *rows = result.stdout.splitlines()
    assert head.startswith("the 10 most recently added of 13 photos")
    assert len(rows) == 10
    assert all(row.endswith("a cat on a mat") or "(unreadable: " in row for row in rows)
    more = CliRunner().invoke(cli, [*args, "--recent", "20"])
    assert len(more.stdout.splitlines()) == 14
    none = CliRunner().invoke(cli, ["--index", str(tmp_path / "empty.db"), "show"])
    assert (
        one_line(none)
        == f"photobatch: no index yet at {tmp_path / 'empty.db'}: run photobatch scan first"
    )


def test_status_names_a_few_folders_of_the_last_scan_however_many_it_had(
    tmp_path: Path,
) -> None:
    """After a watch batch, "last scan" listed every path of the batch."""
    db = tmp_path / "index.db"
    with Index(db) as index:
        paths = [Path(f"/photos/{n:03}.jpg") for n in range(40)]
        index.log_scan("2026-01-01T00:00:00+00:00", paths, {"found": 40, "analyzed": 40,
                       "errors": 0, "missing": 0})  # fmt: skip
    status = CliRunner().invoke(cli, ["--index", str(db), "status"])
    [last] = [line for line in status.stdout.splitlines() if line.startswith("last scan:")]
    assert " of /photos/000.jpg, /photos/001.jpg, /photos/002.jpg and 37 more: 40 found" in last
    assert len(last) < 200


def test_a_watch_batch_is_logged_under_the_watched_folders(
    tmp_path: Path, research_data: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:5]
    for source in sources:
        shutil.copyfile(source, folder / source.name)
    scan, index = scanner(tmp_path)
    scan.update([folder / s.name for s in sources], [], [folder])
    [(roots,)] = index.db.execute("SELECT roots FROM scans").fetchall()
    assert roots == f'["{folder}"]'
    index.close()
