"""Hostile and odd sidecars met by a real scan: each is reported naming the file and left as it
was, and the rest of the batch is processed and committed.

The scans run in-process with the real pipeline and the models' stand-in of ``test_bad_input``
(the models are beside the point here), so each case is quick and a hang fails the test.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from test_bad_input import StandIn, photo

from photobatch.core.config import load_config
from photobatch.library.index import Index
from photobatch.library.sidecars import MAX_SIDECAR_BYTES
from photobatch.scan.pipeline import Scanner
from photobatch.scan.summary import ScanSummary

XMP_HEAD = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description rdf:about="" xmlns:a="https://acme.example/ns/">'
)
XMP_TAIL = b"</rdf:Description></rdf:RDF></x:xmpmeta>\n"


def deep_xmp(depth: int) -> bytes:
    return XMP_HEAD + b"<a:n>" * depth + b"</a:n>" * depth + XMP_TAIL


def deep_json(depth: int) -> bytes:
    return b'{"album": ' + b"[" * depth + b"]" * depth + b"}\n"


def library(root: Path, shared: Path, *names: str) -> Path:
    """A folder of real photos with these names."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in zip(names, ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg"], strict=False):
        photo(shared, source).save(root / name)
    return root


def scan(
    tmp_path: Path, root: Path, **sidecars: object
) -> tuple[ScanSummary, dict[str, str], Scanner]:
    """One scan of ``root`` with these sidecar options; the summary and each photo's status."""
    config = load_config(None, index=tmp_path / "index.db")
    config = replace(config, sidecars=replace(config.sidecars, **sidecars))
    scanner = Scanner(config, Index(config.index), progress=False, analyzer_factory=StandIn)
    summary = scanner.scan([root])
    statuses = {Path(r["path"]).name: r["status"] for r in scanner.index.export_rows()}
    return summary, statuses, scanner


@pytest.mark.parametrize(
    ("suffix", "content"),
    [(".xmp", deep_xmp(1000)), (".json", deep_json(1000)), (".json", deep_json(100_000))],
    ids=["xmp", "json", "json-deeper-than-the-decoder-allows"],
)
def test_deeply_nested_sidecar_does_not_stop_the_scan(
    tmp_path: Path, shared: Path, suffix: str, content: bytes
) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg", "b.jpg")
    hostile = root / f"a.jpg{suffix}"
    hostile.write_bytes(content)
    summary, statuses, _ = scan(tmp_path, root, formats=("xmp", "json"))
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert hostile.read_bytes() == content
    [problem] = summary.problems
    assert problem.startswith(f"{hostile}: left untouched: ")
    assert "nested more than 100 deep" in problem
    written = {p.name for p in root.iterdir()} - {"a.jpg", "b.jpg", hostile.name}
    assert written == {"a.jpg.xmp", "a.jpg.json", "b.jpg.xmp", "b.jpg.json"} - {hostile.name}


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: the alarm interrupts even a blocking ``open``."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_fifo_sidecar_does_not_hang_the_scan(tmp_path: Path, shared: Path) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg", "b.jpg")
    os.mkfifo(root / "a.jpg.xmp")
    with deadline(60):
        summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [
        f"{root / 'a.jpg.xmp'}: left untouched: not a regular file but a named pipe"
    ]
    assert stat.S_ISFIFO((root / "a.jpg.xmp").lstat().st_mode)
    assert (root / "b.jpg.xmp").is_file()


def test_sidecar_linked_to_dev_zero_is_not_read(tmp_path: Path, shared: Path) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg", "b.jpg")
    (root / "a.jpg.xmp").symlink_to("/dev/zero")
    with deadline(60):
        summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [f"{root / 'a.jpg.xmp'}: left untouched: {LINK}"]
    assert os.readlink(root / "a.jpg.xmp") == "/dev/zero"
    assert (root / "b.jpg.xmp").is_file()


LINK = "a symbolic link, which photobatch neither follows nor replaces"


def test_symlinked_sidecar_is_neither_followed_nor_replaced(tmp_path: Path, shared: Path) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg", "b.jpg", "c.jpg")
    elsewhere = tmp_path / "someone-elses.xmp"
    theirs = XMP_HEAD.replace(b"a:n", b"a:x") + b"<a:secret>kept</a:secret>" + XMP_TAIL
    elsewhere.write_bytes(theirs)
    (root / "a.jpg.xmp").symlink_to(elsewhere)
    (root / "b.jpg.xmp").symlink_to(tmp_path / "nowhere.xmp")  # dangling: never created
    summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok", "c.jpg": "ok"}
    assert sorted(summary.problems) == [
        f"{root / 'a.jpg.xmp'}: left untouched: {LINK}",
        f"{root / 'b.jpg.xmp'}: left untouched: {LINK}",
    ]
    assert os.readlink(root / "a.jpg.xmp") == str(elsewhere)
    assert elsewhere.read_bytes() == theirs
    assert os.readlink(root / "b.jpg.xmp") == str(tmp_path / "nowhere.xmp")
    assert not (tmp_path / "nowhere.xmp").exists()
    assert (root / "c.jpg.xmp").is_file()


def test_huge_sidecar_is_not_read_into_memory(tmp_path: Path, shared: Path) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg", "b.jpg")
    huge = root / "a.jpg.xmp"
    with huge.open("wb") as fh:
        fh.truncate(MAX_SIDECAR_BYTES + 1)  # sparse: costs no disk
    summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [f"{huge}: left untouched: larger than 8 MB, far beyond any sidecar"]
    assert huge.stat().st_size == MAX_SIDECAR_BYTES + 1
    assert (root / "b.jpg.xmp").is_file()


def test_folder_named_like_a_sidecar_is_left_alone(tmp_path: Path, shared: Path) -> None:
    root = library(tmp_path / "photos", shared, "a.jpg")
    (root / "a.jpg.xmp").mkdir()
    summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok"}
    assert summary.problems == [
        f"{root / 'a.jpg.xmp'}: left untouched: not a regular file but a folder"
    ]
