"""Where research data is found: $PHOTOBATCH_DATA, else ../shared/data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from photobatch.cli import cli
from photobatch.research import data as research


def test_photobatch_data_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine" / "flickr8k" / "images").mkdir(parents=True)
    monkeypatch.setenv("PHOTOBATCH_DATA", str(tmp_path / "mine"))
    assert research.research_data() == tmp_path / "mine"
    assert research.research_data("flickr8k", "images") == tmp_path / "mine/flickr8k/images"


def test_without_it_shared_data_beside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shared" / "data" / "harrison").mkdir(parents=True)
    monkeypatch.delenv("PHOTOBATCH_DATA", raising=False)
    monkeypatch.setattr(research, "CHECKOUT", tmp_path / "photobatch")
    assert research.research_data("harrison") == tmp_path / "shared/data/harrison"


def one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """What the command says when PHOTOBATCH_DATA names a folder that is not there."""
    monkeypatch.setenv("PHOTOBATCH_DATA", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_bench_without_source_or_data_says_how_to_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = one_line_error(tmp_path, monkeypatch, "bench", "--workdir", str(tmp_path / "work"))
    assert str(tmp_path / "nowhere" / "flickr8k" / "images") in line
    assert "set PHOTOBATCH_DATA" in line and "pass --source" in line
    assert not (tmp_path / "work").exists()  # failed before generating anything


def test_personal_benchmark_without_data_says_how_to_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = one_line_error(tmp_path, monkeypatch, "evaluate", "personalizer", "--benchmark")
    assert str(tmp_path / "nowhere") in line and "set PHOTOBATCH_DATA" in line
