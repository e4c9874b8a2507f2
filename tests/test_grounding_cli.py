"""Measuring grounding from the command line: the hallucination rate and hashtags vs human tags."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from click.testing import CliRunner

from photobatch.cli import cli


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])
    return result.exit_code, result.output


def figure(output: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} +([0-9.]+)", output, re.M)
    assert match, output
    return float(match[1])


def test_evaluate_captioner_reports_the_hallucination_rate_on_everyday_photos(
    research_data: Path, tmp_path: Path
) -> None:
    coco = research_data / "broad" / "coco-dev"
    data = ["--captions", str(coco / "captions.csv"), "--images", str(coco), "--split", "all"]
    data += ["--cache", str(tmp_path / "cache"), "--device", "cpu"]
    code, grounded = run(tmp_path, "evaluate", "captioner", *data)
    assert code == 0, grounded
    assert "of the 41 photos with no person or dog in any reference" in grounded
    assert figure(grounded, "hallucination") <= 0.10
    assert figure(grounded, "CIDEr") >= 0.40
    assert re.search(r"^captions +.*\bconcept\b", grounded, re.M)
    code, raw = run(tmp_path, "evaluate", "captioner", *data, "--raw")
    assert code == 0, raw
    assert figure(raw, "hallucination") >= 0.5  # the captioner alone names a man or a dog
    assert figure(raw, "CIDEr") < figure(grounded, "CIDEr")


def test_evaluate_hashtags_against_human_tags_and_scenes(
    research_data: Path, tmp_path: Path
) -> None:
    scenes = research_data / "broad" / "scenes"
    with (scenes / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = tmp_path / "labels.csv"
    with picked.open("w", newline="") as handle:
        out = csv.DictWriter(handle, ["image", "scene"])
        out.writeheader()
        for scene in ("kitchen", "library", "desert", "waterfall"):
            out.writerows([r for r in rows if r["scene"] == scene][:2])
        out.writerow({"image": "not-there.jpg", "scene": "kitchen"})
    code, output = run(
        tmp_path, "evaluate", "hashtags", "--tags", str(picked), "--images", str(scenes),
        "--column", "scene", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, output
    assert figure(output, "photos") == 8
    assert figure(output, "hit@5") >= 0.75
    assert 0 < figure(output, "P@5") <= 0.2 + 1e-9  # one scene tag among five at best
    assert "missing  1 listed photos" in output

    tags = tmp_path / "tags.csv"
    tags.write_text("image,tags\nn07873807.jpg,#pizza #Italian #dinner\nn01443537.jpg,goldfish\n")
    code, output = run(
        tmp_path, "evaluate", "hashtags", "--tags", str(tags),
        "--images", str(research_data / "broad" / "imagenet"), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, output
    assert figure(output, "hit@5") == 1.0


def test_train_grounding_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "flickr8k").mkdir()
    code, output = run(tmp_path, "train", "grounding", "--data", str(tmp_path))
    assert code == 1
    assert str(tmp_path / "flickr8k" / "captions.csv") in output


def test_search_food_finds_food_photos(research_data: Path, tmp_path: Path) -> None:
    import shutil

    library = tmp_path / "photos"
    library.mkdir()
    food = {"pizza.jpg": "n07873807.jpg", "guacamole.jpg": "n07583066.jpg"}
    food["burger.jpg"] = "n07697313.jpg"
    for name, source in food.items():
        shutil.copy(research_data / "broad" / "imagenet" / source, library / name)
    kitchen = research_data / "broad" / "coco-dev" / "000000177977.jpg"
    shutil.copy(kitchen, library / "kitchen.jpg")
    code, output = run(tmp_path, "scan", "--no-sidecars", "--quiet", str(library))
    assert code == 0, output
    code, output = run(tmp_path, "search", "food")
    assert code == 0, output
    assert {Path(line).name for line in output.split()} == set(food)

    code, output = run(tmp_path, "show", "--json", str(library / "pizza.jpg"))
    assert code == 0, output
    shown = json.loads(output)
    assert shown["caption_source"] == "concept" and 0.3 <= shown["caption_confidence"] <= 1
    assert list(shown["hashtag_scores"])[:2] == ["pizza", "food"]
    assert shown["hashtags"].startswith("#pizza #food")
