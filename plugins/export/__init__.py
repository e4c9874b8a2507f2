"""Export formats for ``photobatch export``: CSV, one JSON array, and JSON Lines.

Rows arrive as an iterator straight from the index and are written one at a time, so exporting a
large library never holds the whole output in memory. Text in them comes from outside (EXIF
fields, Instagram captions), so CSV, which spreadsheets open, neutralises what a spreadsheet would
run as a formula; JSON and JSON Lines keep every value exactly.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO, Any

from photobatch.core.hooks import hookimpl

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvExporter:
    """CSV with a header row; None becomes an empty cell, as spreadsheets expect, a mapping its
    JSON text, and text that a spreadsheet would run as a formula starts with ``'`` (OWASP's
    advice), so it shows as text."""

    name = "csv"

    def export(self, rows: Iterable[dict[str, Any]], columns: list[str], out: IO[str]) -> int:
        """Write a header and one line per row; return the row count."""
        writer = csv.writer(out)
        writer.writerow(columns)
        count = 0
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
            count += 1
        return count


class JsonExporter:
    """One JSON array, streamed object by object instead of built as one string."""

    name = "json"

    def export(self, rows: Iterable[dict[str, Any]], columns: list[str], out: IO[str]) -> int:
        """Write ``[`` rows ``]`` with one object per line; return the row count."""
        count = 0
        out.write("[")
        for row in rows:
            out.write(",\n" if count else "\n")
            out.write(_dumps(row, columns))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count


class JsonLinesExporter:
    """One JSON object per line, for tools that read records as a stream."""

    name = "jsonl"

    def export(self, rows: Iterable[dict[str, Any]], columns: list[str], out: IO[str]) -> int:
        """Write one line per row; return the row count."""
        count = 0
        for row in rows:
            out.write(_dumps(row, columns) + "\n")
            count += 1
        return count


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):  # hashtag_scores: a cell holds it as JSON text
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _dumps(row: dict[str, Any], columns: list[str]) -> str:
    """One row as a JSON object with keys in column order, non-ASCII text kept readable."""
    return json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False)


@hookimpl
def photobatch_exporters() -> list[CsvExporter | JsonExporter | JsonLinesExporter]:
    """photobatch's own export formats, registered like any third-party plugin."""
    return [CsvExporter(), JsonExporter(), JsonLinesExporter()]
