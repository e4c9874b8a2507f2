"""The captioner from the command line: train, evaluate, and the attention figure of `show`."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from photobatch.cli import cli
from photobatch.library.index import Index
from photobatch.training.metrics import METRICS

DOG_PHOTO = "1026685415_0431cbf574.jpg"  # a val photo whose five captions all say "dog"


def flickr_subset(research_data: Path, tmp_path: Path, train: int, val: int) -> tuple[Path, Path]:
    """A captions CSV and a splits CSV naming the first ``train`` and ``val`` shared photos."""
    root = research_data / "flickr8k"
    with (root / "splits.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    chosen = {}
    for split, count in (("train", train), ("val", val)):
        chosen.update((r["image"], split) for r in [r for r in rows if r["split"] == split][:count])
    captions, splits = tmp_path / "captions.csv", tmp_path / "splits.csv"
    with (root / "captions.csv").open(newline="") as src, captions.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["image", "caption"])
        kept = [r for r in csv.DictReader(src) if r["image"] in chosen]
        out.writerows([r["image"], r["caption"]] for r in kept)
    with splits.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["image", "split"])
        out.writerows(chosen.items())
    return captions, splits


def invoke(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])
    assert result.exit_code == 0, result.output
    return result.output


def scores(output: str) -> dict[str, float]:
    """``NAME value`` lines of a metrics printout."""
    names = "|".join(re.escape(m) for m in METRICS)
    return {m[1]: float(m[2]) for m in re.finditer(rf"({names}) +([0-9.]+)$", output, re.M)}


def test_train_resume_and_evaluate_a_captioner(research_data: Path, tmp_path: Path) -> None:
    captions, splits = flickr_subset(research_data, tmp_path, train=24, val=8)
    images = research_data / "flickr8k" / "images"
    model = tmp_path / "mine" / "captioner.pt"
    data = ["--captions", str(captions), "--images", str(images), "--splits", str(splits)]
    data += ["--cache", str(tmp_path / "cache"), "--device", "cpu"]
    train = ["train", "captioner", *data, "--output", str(model), "--hidden-dim", "32"]

    output = invoke(tmp_path, *train, "--max-epochs", "2")
    assert "(24 train, 8 val photos" in output
    assert set(scores(output)) >= {"BLEU-4", "CIDEr"}
    payload = torch.load(model, weights_only=True)  # a plain, safely loadable checkpoint
    assert payload["meta"]["epoch"] in (1, 2)
    assert payload["meta"]["train_config"]["hidden_dim"] == 32

    # A longer run of the same recipe would refuse the saved state; the same one resumes at its
    # end and trains nothing more.
    again = invoke(tmp_path, *train, "--max-epochs", "2")
    assert "of 2 " in again
    assert torch.load(model, weights_only=True)["meta"] == payload["meta"]

    evaluated = scores(invoke(tmp_path, "evaluate", "captioner", *data, "--model", str(model)))
    assert {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"} <= set(evaluated)
    assert all(0.0 <= v <= 10.0 and math.isfinite(v) for v in evaluated.values())

    # Fine-tuning starts from the given weights: with a vanishing learning rate they stay.
    tuned = tmp_path / "tuned" / "captioner.pt"
    fine_tune = ["train", "captioner", *data, "--init", str(model), "--hidden-dim", "32"]
    invoke(tmp_path, *fine_tune, "--output", str(tuned), "--max-epochs", "1", "--lr", "1e-12")
    before, after = payload["state_dict"], torch.load(tuned, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    mismatch = CliRunner().invoke(
        cli,
        ["--index", str(tmp_path / "index.db"), *fine_tune[:-1], "64", "-o", str(tmp_path / "x")],
    )
    assert mismatch.exit_code == 1
    assert f"{model}: its sizes" in mismatch.output


def test_shipped_captioner_is_sensible_on_val_photos(research_data: Path, tmp_path: Path) -> None:
    """100 val photos are a noisy sample of the model card's 1,000 (the shipped model: BLEU-1
    0.58, CIDEr 0.50 on these), but far above what a broken model scores (CIDEr near 0)."""
    captions, splits = flickr_subset(research_data, tmp_path, train=0, val=100)
    images = research_data / "flickr8k" / "images"
    output = invoke(
        tmp_path,
        "evaluate",
        "captioner",
        *["--captions", str(captions), "--images", str(images), "--splits", str(splits)],
        *["--cache", str(tmp_path / "cache"), "--device", "cpu"],
    )
    evaluated = scores(output)
    assert evaluated["BLEU-1"] > 0.5, output
    assert evaluated["CIDEr"] > 0.3, output


@pytest.mark.parametrize("size", [1, 3, 4, 5, 6, 12])
def test_attention_sheet_holds_the_photo_and_one_panel_per_word(size: int, tmp_path: Path) -> None:
    from photobatch.models.attention import COLUMNS, LABEL, PANEL, render_attention
    from photobatch.models.captioner import CaptionResult

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 240), (40, 120, 200)).save(photo)
    words = [f"w{i}" for i in range(size)]
    result = CaptionResult(" ".join(words), words, torch.softmax(torch.randn(size, 49), dim=1))
    with open(tmp_path / "sheet.png", "wb") as out:
        render_attention(photo, result, out)
    with Image.open(tmp_path / "sheet.png") as sheet:
        panels = size + 1
        assert sheet.size == (
            min(panels, COLUMNS) * PANEL,
            -(-panels // COLUMNS) * (PANEL + LABEL),
        )


def test_show_draws_the_attention_of_the_indexed_caption(
    research_data: Path, tmp_path: Path
) -> None:
    from photobatch.models.attention import COLUMNS, LABEL, PANEL

    library = tmp_path / "library"
    library.mkdir()
    photo = library / "dog.jpg"
    shutil.copyfile(research_data / "flickr8k" / "images" / DOG_PHOTO, photo)
    invoke(tmp_path, "scan", "--quiet", "--no-sidecars", str(library))
    caption = json.loads(invoke(tmp_path, "show", "--json", str(photo)))["caption"]
    assert "dog" in caption.lower()

    figure = tmp_path / "figures" / "dog-attention.png"
    result = CliRunner().invoke(
        cli, ["--index", str(tmp_path / "index.db"), "show", str(photo), "--attention", str(figure)]
    )
    assert result.exit_code == 0, result.output
    words = caption.rstrip(".").split()
    panels = len(words) + 1  # the same caption as the index: the photo, then a panel per word
    with Image.open(figure) as sheet:
        assert sheet.size == (min(panels, COLUMNS) * PANEL, -(-panels // COLUMNS) * (PANEL + LABEL))
        # The word panels are the photo dimmed outside the attended regions: darker than it.
        pixels = np.asarray(sheet.convert("L"), dtype=np.float32)
    first = pixels[LABEL : LABEL + PANEL, :PANEL].mean()
    second = pixels[LABEL : LABEL + PANEL, PANEL : 2 * PANEL].mean()
    assert second < first


def test_show_attention_of_a_photo_not_in_the_index_is_a_clear_error(tmp_path: Path) -> None:
    args = ["show", str(tmp_path / "x.jpg"), "--attention", str(tmp_path / "o.png")]
    Index(tmp_path / "i.db").close()  # an index without the photo (show never creates one)
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "i.db"), *args])
    assert result.exit_code != 0
    assert "not in the index" in result.output


def test_a_damaged_captioner_model_stops_the_scan_with_a_clear_error(
    research_data: Path, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    shutil.copyfile(research_data / "flickr8k" / "images" / DOG_PHOTO, library / "dog.jpg")
    damaged = tmp_path / "captioner.pt"
    damaged.write_bytes(b"PK\x03\x04 half of a checkpoint")
    config = tmp_path / "config.yaml"
    config.write_text(f"captioner:\n  model: {damaged}\n")
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "--index", str(tmp_path / "i.db"), "scan", str(library)],
    )
    assert result.exit_code == 1
    assert f"{damaged}: cannot read this captioner checkpoint" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
