"""Hostile and odd sidecars met by a real scan: each is reported naming the file and left as it
was, and the rest of the batch is processed and committed.

The scans run in-process with the real pipeline and the models' stand-in of ``test_bad_input``
(the models are beside the point here), so each case is quick and a hang fails the test.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_bad_input import StandIn, photo

from photobatch.core.config import load_config
from photobatch.library.index import Index
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
