"""Model versions: results record which weights and settings made them, and a scan redoes the
photos that other versions made (a captioner retrained in place, a new beam size), or all of them
with ``--reanalyse``. Real photos, the shipped weights, the real CLI."""

from __future__ import annotations

import csv
import io
import shutil
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from photobatch.cli import cli
from photobatch.core.config import CaptionerConfig
from photobatch.models.captioner import (
    Captioner,
    load_checkpoint,
    save_checkpoint,
    shipped_model_path,
)

PHOTOS = ("1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg")


class Library:
    """Three Flickr8k photos, a captioner copied to a path of the user's, and a config naming it."""

    def __init__(self, research_data: Path, tmp: Path) -> None:
        self.root = tmp / "photos"
        self.root.mkdir()
        for name in PHOTOS:
            shutil.copyfile(research_data / "flickr8k" / "images" / name, self.root / name)
        self.model = tmp / "my-captioner.pt"
        shutil.copyfile(shipped_model_path(), self.model)
        self.config = tmp / "config.yaml"
        self.index = tmp / "index.db"
        self.configure(beam_size=5)

    def configure(self, beam_size: int) -> None:
        self.config.write_text(f"captioner:\n  model: {self.model}\n  beam_size: {beam_size}\n")

    def cli(self, *args: str) -> str:
        base = ["--config", str(self.config), "--index", str(self.index)]
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    def status(self) -> str:
        return self.cli("status")

    def rows(self) -> dict[str, dict[str, str]]:
        rows = csv.DictReader(io.StringIO(self.cli("export", "--format", "csv")))
        return {Path(row["path"]).name: row for row in rows}

    def summary(self, *options: str) -> str:
        args = ["scan", "--no-sidecars", str(self.root), *options]
        return self.cli(*args).strip().splitlines()[-1]


@pytest.fixture
def library(research_data: Path, tmp_path: Path) -> Library:
    return Library(research_data, tmp_path)


def test_retrained_captioner_beam_size_and_reanalyse_each_redo_the_library(
    library: Library,
) -> None:
    first = library.summary()
    assert "3 new" in first and "; 3 analysed" in first
    captions = {name: row["caption"] for name, row in library.rows().items()}
    assert all(captions.values())
    unchanged = library.summary()
    assert "3 unchanged" in unchanged and "re-analysed" not in unchanged
    assert "; 0 analysed" in unchanged

    # Retrained in place: same path, same size, other weights.
    model, vocab, meta = load_checkpoint(library.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            weight.mul_(1 + 0.5 * torch.randn(weight.shape, generator=generator))
    before = library.status()
    save_checkpoint(library.model, model, vocab, meta)
    assert "3 photos from other versions" in library.status()
    retrained = library.summary()
    assert "3 re-analysed (new models" in retrained and "; 3 analysed" in retrained
    recaptioned = {name: row["caption"] for name, row in library.rows().items()}
    assert recaptioned != captions
    assert "re-analysed" not in library.summary()  # the new version is now the current one

    library.configure(beam_size=1)
    assert "3 re-analysed" in library.summary()
    after = library.status()
    models_line = next(line for line in after.splitlines() if line.startswith("models:"))
    assert models_line not in before  # the stored versions moved on twice

    forced = library.summary("--reanalyse")
    assert "3 re-analysed" in forced and "; 3 analysed" in forced


def test_version_follows_weights_and_output_settings_not_the_file_name(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere.pt"
    shutil.copyfile(shipped_model_path(), copy)
    shipped = Captioner("cpu", CaptionerConfig())
    assert Captioner("cpu", CaptionerConfig(model=copy)).version == shipped.version
    assert Captioner("cpu", CaptionerConfig(beam_size=3)).version != shipped.version
    assert Captioner("cpu", CaptionerConfig(length_penalty=1.0)).version != shipped.version
    assert not shipped.loaded  # versions are read from the files, not from loaded weights


def test_load_from_many_threads_loads_once() -> None:
    loads = []

    class Counted(Captioner):
        def _load(self) -> None:
            loads.append(1)
            super()._load()

    captioner = Counted("cpu")
    threads = [threading.Thread(target=captioner.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    model = captioner.model
    captioner.load()
    assert len(loads) == 1 and captioner.model is model
