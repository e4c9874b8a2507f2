"""The command line's one boundary for signals, encodings and output errors: whatever stops a
command or whatever its output meets, the user reads one line (or the output), never a traceback,
and never a C++ abort or stack dump.

These run the real ``photobatch`` in a subprocess, as a terminal, cron or systemd would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import interruptible
from test_bad_input import scanner

PHOTOBATCH = [sys.executable, "-m", "photobatch"]


def photobatch(index: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run([*PHOTOBATCH, "--index", str(index), *args], timeout=300, **streams)


@pytest.fixture(scope="module")
def many_photos(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 real photos: three batches, more than the first one analysed before a stop."""
    folder = tmp_path_factory.mktemp("photos")
    for source in sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:96]:
        shutil.copyfile(source, folder / source.name)
    return folder


@pytest.mark.parametrize(
    ("signum", "delay"),
    [(signal.SIGINT, 0.4), (signal.SIGINT, 0.8), (signal.SIGINT, 1.2), (signal.SIGTERM, 0.8)],
)
def test_a_stop_signal_while_the_models_load_ends_in_one_line(
    tmp_path: Path, many_photos: Path, signum: int, delay: float
) -> None:
    """Ctrl-C while torch and ONNX Runtime start used to abort the process ("terminate called
    without an active exception", SIGABRT): the interpreter exited under the loading thread."""
    scan = subprocess.Popen(
        [
            *PHOTOBATCH,
            "--index",
            str(tmp_path / "index.db"),
            "scan",
            "--no-sidecars",
            str(many_photos),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    time.sleep(delay)
    scan.send_signal(signum)
    out, err = scan.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert scan.returncode == 128 + signum, err
    assert (out, err) == (
        "",
        f"photobatch: scan: stopped by {name}; what was done so far is kept\n",
    )


def test_output_to_a_full_device_is_one_line(tmp_path: Path, research_data: Path) -> None:
    library = tmp_path / "photos"
    library.mkdir()
    shutil.copyfile(next((research_data / "flickr8k" / "images").glob("*.jpg")), library / "a.jpg")
    scan, index = scanner(tmp_path)
    scan.scan([library])
    index.close()
    db = tmp_path / "index.db"
    with open("/dev/full", "w") as full:
        for command in (
            ["export", "--format", "csv"],
            ["status"],
            ["show", str(library / "a.jpg")],
        ):
            result = photobatch(db, *command, stdout=full, stderr=subprocess.PIPE)
            assert result.returncode == 1
            assert result.stderr.decode() == (
                f"photobatch: {command[0]}: cannot write the output: No space left on device\n"
            )
    result = photobatch(db, "show", str(library / "a.jpg"), "--attention", "/dev/full")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "photobatch: /dev/full: cannot write the attention figure: No space left on device\n"
    )


def test_a_closed_pipe_ends_the_export_quietly(tmp_path: Path) -> None:
    from photobatch.core.records import FoundFile, PhotoRow
    from photobatch.library.index import Index

    with Index(tmp_path / "index.db") as index:
        rows = [
            PhotoRow(FoundFile(Path(f"/p/{i}.jpg"), 1, 1), "error", error="x") for i in range(5000)
        ]
        index.write_batch(rows, [])
    export = subprocess.Popen(
        [*PHOTOBATCH, "--index", str(tmp_path / "index.db"), "export", "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export.stdout is not None
    export.stdout.readline()
    export.stdout.close()  # what `| head -1` does
    assert export.wait(timeout=60) in (0, 1)
    assert export.stderr is not None and export.stderr.read() == b""


def test_names_that_are_not_utf8_print_as_their_bytes_on_a_strict_terminal(
    tmp_path: Path, research_data: Path
) -> None:
    """A desktop terminal's strict UTF-8 (PYTHONIOENCODING=utf-8:strict) met a Latin-1 file
    name from an old camera card: search, show and show --json ended in UnicodeEncodeError."""
    library = tmp_path / "photos"
    library.mkdir()
    name = b"caf\xe9.jpg"
    source = next((research_data / "flickr8k" / "images").glob("*.jpg"))
    shutil.copyfile(source, os.fsencode(library) + b"/" + name)
    scan, index = scanner(tmp_path)
    scan.scan([library])
    index.close()
    db, photo = tmp_path / "index.db", os.fsencode(library) + b"/" + name
    strict = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    for command in (
        ["search", "cat"],
        ["show", os.fsdecode(photo)],
        ["show", "--json", os.fsdecode(photo)],
    ):
        result = photobatch(db, *command, env=strict)
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
        assert photo in result.stdout  # the name as it is on disk, byte for byte
