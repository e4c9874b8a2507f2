"""Hostile and odd sidecars met by a real scan: each is reported naming the file and left as it
was, and the rest of the batch is processed and committed.

The scans run in-process with the real pipeline and the models' stand-in of ``test_bad_input``
(the models are beside the point here), so each case is quick and a hang fails the test.
"""

from __future__ import annotations

import json
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


def library(root: Path, research_data: Path, *names: str) -> Path:
    """A folder of real photos with these names."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in zip(names, ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg"], strict=False):
        photo(research_data, source).save(root / name)
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
    tmp_path: Path, research_data: Path, suffix: str, content: bytes
) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
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


def test_fifo_sidecar_does_not_hang_the_scan(tmp_path: Path, research_data: Path) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    os.mkfifo(root / "a.jpg.xmp")
    with deadline(60):
        summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [
        f"{root / 'a.jpg.xmp'}: left untouched: not a regular file but a named pipe"
    ]
    assert stat.S_ISFIFO((root / "a.jpg.xmp").lstat().st_mode)
    assert (root / "b.jpg.xmp").is_file()


def test_sidecar_linked_to_dev_zero_is_not_read(tmp_path: Path, research_data: Path) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    (root / "a.jpg.xmp").symlink_to("/dev/zero")
    with deadline(60):
        summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [f"{root / 'a.jpg.xmp'}: left untouched: {LINK}"]
    assert os.readlink(root / "a.jpg.xmp") == "/dev/zero"
    assert (root / "b.jpg.xmp").is_file()


LINK = "a symbolic link, which photobatch neither follows nor replaces"


def test_symlinked_sidecar_is_neither_followed_nor_replaced(
    tmp_path: Path, research_data: Path
) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg", "c.jpg")
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


def test_huge_sidecar_is_not_read_into_memory(tmp_path: Path, research_data: Path) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    huge = root / "a.jpg.xmp"
    with huge.open("wb") as fh:
        fh.truncate(MAX_SIDECAR_BYTES + 1)  # sparse: costs no disk
    summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok", "b.jpg": "ok"}
    assert summary.problems == [f"{huge}: left untouched: larger than 8 MB, far beyond any sidecar"]
    assert huge.stat().st_size == MAX_SIDECAR_BYTES + 1
    assert (root / "b.jpg.xmp").is_file()


def test_folder_named_like_a_sidecar_is_left_alone(tmp_path: Path, research_data: Path) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg")
    (root / "a.jpg.xmp").mkdir()
    summary, statuses, _ = scan(tmp_path, root)
    assert statuses == {"a.jpg": "ok"}
    assert summary.problems == [
        f"{root / 'a.jpg.xmp'}: left untouched: not a regular file but a folder"
    ]


# -- lifecycle: moves, deletions, names shared under basename naming ------------------------------

USERS_OWN = b"<a:note>the user's own note</a:note>"


def add_users_note(sidecar: Path) -> bytes:
    """Another application's edit to a sidecar photobatch wrote."""
    content = sidecar.read_bytes().replace(b"</rdf:RDF>", b"", 1)
    content = content.replace(
        b"</x:xmpmeta>",
        b'<rdf:Description rdf:about="" xmlns:a="https://acme.example/ns/">'
        + USERS_OWN
        + b"</rdf:Description></rdf:RDF></x:xmpmeta>",
    )
    sidecar.write_bytes(content)
    return content


def test_renamed_or_moved_photo_takes_its_sidecar_along(
    tmp_path: Path, research_data: Path
) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    scan(tmp_path, root)
    add_users_note(root / "a.jpg.xmp")
    (root / "a.jpg").rename(root / "renamed.jpg")
    (root / "sub").mkdir()
    (root / "b.jpg").rename(root / "sub" / "b.jpg")
    summary, statuses, _ = scan(tmp_path, root)
    assert summary.reused == 2 and summary.problems == []
    assert statuses == {"renamed.jpg": "ok", "b.jpg": "ok", "a.jpg": "missing"}
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.xmp")) == [
        "renamed.jpg.xmp",
        "sub/b.jpg.xmp",
    ]
    assert USERS_OWN in (root / "renamed.jpg.xmp").read_bytes()


def test_watched_move_takes_the_sidecar_along(tmp_path: Path, research_data: Path) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg")
    _, _, scanner = scan(tmp_path, root, formats=("xmp", "json"))
    (root / "a.jpg").rename(root / "b.jpg")
    assert scanner.move(root / "a.jpg", root / "b.jpg") == 1
    assert sorted(p.name for p in root.iterdir()) == ["b.jpg", "b.jpg.json", "b.jpg.xmp"]
    assert json.loads((root / "b.jpg.json").read_bytes())["name"] == "b.jpg"


def test_move_never_clobbers_or_takes_a_sidecar_photobatch_did_not_write(
    tmp_path: Path, research_data: Path
) -> None:
    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    theirs = XMP_HEAD + USERS_OWN + XMP_TAIL
    (root / "b.jpg.xmp").write_bytes(theirs)
    config = load_config(None, index=tmp_path / "index.db")
    Scanner(config, Index(config.index), sidecars=False, analyzer_factory=StandIn).scan([root])
    scan(tmp_path, root)  # now with sidecars: a.jpg.xmp is photobatch's, b.jpg.xmp stays theirs
    (root / "b.jpg.xmp").write_bytes(theirs)
    (root / "c.jpg.xmp").write_bytes(theirs)  # already there for the photo's new name
    (root / "a.jpg").rename(root / "c.jpg")
    (root / "b.jpg").rename(root / "d.jpg")
    summary, _, _ = scan(tmp_path, root)
    assert summary.problems == []
    # a.jpg.xmp, photobatch's alone, did not move (c.jpg already had one), and went with a.jpg.
    assert sorted(p.name for p in root.glob("*.xmp")) == [
        "b.jpg.xmp",  # the user's: never moved
        "c.jpg.xmp",
        "d.jpg.xmp",
    ]
    assert (root / "b.jpg.xmp").read_bytes() == theirs
    assert USERS_OWN in (root / "c.jpg.xmp").read_bytes()


def test_deleted_or_emptied_sidecar_is_written_again_without_rereading_the_photo(
    tmp_path: Path, research_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted sidecar, or an empty one (what a power cut can leave of a first write, which is
    not fsynced), is written again by the next scan."""
    from photobatch.scan import local

    root = library(tmp_path / "photos", research_data, "a.jpg", "b.jpg")
    scan(tmp_path, root, formats=("xmp", "json"))
    written = (root / "a.jpg.xmp").read_bytes()
    (root / "a.jpg.xmp").unlink()
    (root / "b.jpg.json").write_bytes(b"")

    def no_reading(item: object) -> None:
        raise AssertionError("an unchanged photo was read again")

    monkeypatch.setattr(local, "identify", no_reading)
    summary, _, _ = scan(tmp_path, root, formats=("xmp", "json"))
    assert summary.unchanged == 2 and summary.problems == []
    assert (root / "a.jpg.xmp").read_bytes() == written
    assert json.loads((root / "b.jpg.json").read_bytes())["name"] == "b.jpg"


def test_photos_sharing_a_basename_do_not_overwrite_each_others_sidecar(
    tmp_path: Path, research_data: Path
) -> None:
    root = library(tmp_path / "photos", research_data, "IMG_1.jpg", "IMG_1.png", "IMG_2.jpg")
    summary, statuses, _ = scan(tmp_path, root, formats=("xmp", "json"), naming="basename")
    assert set(statuses.values()) == {"ok"}
    assert sorted(summary.problems) == [
        f"{root / 'IMG_1'}{suffix}: not written for IMG_1.png: it is IMG_1.jpg's sidecar "
        "(sidecars.naming: basename gives both the same one)"
        for suffix in (".json", ".xmp")
    ]
    assert json.loads((root / "IMG_1.json").read_bytes())["name"] == "IMG_1.jpg"
    assert json.loads((root / "IMG_2.json").read_bytes())["name"] == "IMG_2.jpg"
    assert (root / "IMG_1.xmp").is_file() and (root / "IMG_2.xmp").is_file()


def test_a_sidecar_is_on_disk_before_it_replaces_the_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing a sidecar (which may hold the user's own keywords) waits for the new content to
    reach the disk, so a power cut leaves the old file or the new one, never an empty one; a
    first write skips that wait."""
    from photobatch.library import sidecars

    events: list[str] = []
    monkeypatch.setattr(sidecars.os, "fsync", lambda fd: events.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        sidecars.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))
    )
    target = tmp_path / "a.jpg.xmp"
    sidecars.write_atomic(target, b"first")
    assert events == ["replace"]
    events.clear()
    sidecars.write_atomic(target, b"second")
    assert events == ["fsync", "replace"]
    assert target.read_bytes() == b"second"
