"""Measuring grounding from the command line: the hallucination rate and hashtags vs human tags."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
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
    assert figure(grounded, "CIDEr") >= 0.45
    assert re.search(r"^captions +.*\bconcept\b", grounded, re.M)
    # CHAIR: captions that name one of COCO's objects no reference mentions (issue 21's targets
    # on held-out photos; here on the dev set the calibration also saw, so with room to spare).
    assert figure(grounded, "CHAIRs") <= 0.10
    assert figure(grounded, "CHAIRs-described") <= 0.10
    assert figure(grounded, "described") >= 0.70
    assert figure(grounded, "CIDEr-described") >= 0.45
    assert figure(grounded, "AUROC") >= 0.80
    assert figure(grounded, "ECE") <= 0.10
    code, raw = run(tmp_path, "evaluate", "captioner", *data, "--raw")
    assert code == 0, raw
    assert figure(raw, "hallucination") >= 0.5  # the captioner alone names a man or a dog
    assert figure(raw, "CHAIRs") >= 0.5  # ... and invents other objects
    assert figure(raw, "CIDEr") < figure(grounded, "CIDEr")
    assert "AUROC" not in raw  # the captioner alone has no confidence


def test_evaluate_search_scores_every_result_of_everyday_words(
    research_data: Path, tmp_path: Path
) -> None:
    coco = research_data / "broad" / "coco-dev"
    code, output = run(
        tmp_path, "evaluate", "search", "--captions", str(coco / "captions.csv"),
        "--images", str(coco), "--words", "person,dog,pizza,bus", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, output
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[1:5]}
    assert rows["person"][0] == "38" and rows["dog"][0] == "5"  # photos a reference names it in
    assert figure(output, "precision") >= 0.85
    assert figure(output, "recall") >= 0.4
    code, output = run(
        tmp_path, "evaluate", "search", "--captions", str(coco / "captions.csv"),
        "--images", str(coco), "--words", "sunset",
    )  # fmt: skip
    assert code == 1 and "'sunset': not one of COCO's objects" in output


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
    assert {Path(line.split("\t")[0]).name for line in output.splitlines()} == set(food)

    code, output = run(tmp_path, "show", "--json", str(library / "pizza.jpg"))
    assert code == 0, output
    shown = json.loads(output)
    assert shown["caption_source"] == "concept" and 0.3 <= shown["caption_confidence"] <= 1
    assert list(shown["hashtag_scores"])[:2] == ["pizza", "food"]
    assert shown["hashtags"].startswith("#pizza #food")


def subset(source: Path, folder: Path, table: str, keep: set[str], photos: bool = True) -> None:
    """``folder/table``: the rows of ``source/table`` whose image is in ``keep``, and (with
    ``photos``) links to those photos beside it."""
    with (source / table).open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [r for r in reader if r["image"] in keep]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / table).open("w", newline="") as handle:
        out = csv.DictWriter(handle, list(fields or []))
        out.writeheader()
        out.writerows(rows)
    for image in keep if photos else ():
        (folder / image).symlink_to(source / image)


def small_data(research_data: Path, root: Path) -> Path:
    """A data folder laid out like the shared one with a few photos of each set: 300 Flickr8k
    train and 40 val photos, 8 photos of each scene, 30 of coco-dev, and ImageNet whole (the
    heads need its 1,000 classes)."""
    flickr, broad = research_data / "flickr8k", research_data / "broad"
    with (flickr / "splits.csv").open(newline="") as handle:
        splits = list(csv.DictReader(handle))
    train = sorted(r["image"] for r in splits if r["split"] == "train")[:300]
    keep = set(train) | set(sorted(r["image"] for r in splits if r["split"] == "val")[:40])
    subset(flickr, root / "flickr8k", "splits.csv", keep, photos=False)
    subset(flickr, root / "flickr8k", "captions.csv", keep, photos=False)
    (root / "flickr8k" / "images").symlink_to(flickr / "images")
    with (broad / "scenes" / "labels.csv").open(newline="") as handle:
        by_scene: dict[str, list[str]] = {}
        for r in csv.DictReader(handle):
            by_scene.setdefault(r["scene"], []).append(r["image"])
    scenes = {image for images in by_scene.values() for image in images[:8]}
    subset(broad / "scenes", root / "broad" / "scenes", "labels.csv", scenes)
    with (broad / "coco-dev" / "captions.csv").open(newline="") as handle:
        coco = set(sorted({r["image"] for r in csv.DictReader(handle)})[:30])
    subset(broad / "coco-dev", root / "broad" / "coco-dev", "captions.csv", coco)
    (root / "broad" / "imagenet").symlink_to(broad / "imagenet")
    (root / "chair").mkdir()
    (root / "chair" / "synonyms.txt").symlink_to(research_data / "chair" / "synonyms.txt")
    return root


def test_train_grounding_fits_calibrates_and_rebuilds_the_same_file(
    research_data: Path, tmp_path: Path
) -> None:
    """A small real run: object heads, a calibrated confidence and its describe point, and the
    same data gives the same bytes (so the model version of a rebuild is the same)."""
    import numpy as np

    from photobatch.models.grounding import FEATURES, Grounding

    data = small_data(research_data, tmp_path / "data")
    outputs = []
    for run_number in (1, 2):
        out = tmp_path / f"heads{run_number}.npz"
        code, output = run(
            tmp_path, "train", "grounding", "--data", str(data), "--output", str(out),
            "--device", "cpu", "--cache", str(tmp_path / "cache"),
        )  # fmt: skip
        assert code == 0, output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert "77 object heads" in output and "describe point" in output
    assert re.search(r"coco-dev: \d+ of 30 photos captioned, .* AUROC", output)
    with np.load(tmp_path / "heads1.npz") as heads:
        assert heads["calibration"].shape == (len(FEATURES) + 1,)
        assert 0.5 <= float(heads["describe"]) <= 0.95
    assert Grounding(tmp_path / "heads1.npz").describe == float(np.load(out)["describe"])


@pytest.mark.slow
def test_train_grounding_rebuilds_the_shipped_heads(research_data: Path, tmp_path: Path) -> None:
    """The full run reproduces models/grounding.npz byte for byte (a few minutes cold)."""
    from photobatch.models.grounding import shipped_heads_path

    out = tmp_path / "grounding.npz"
    code, output = run(
        tmp_path, "train", "grounding", "--data", str(research_data), "--output", str(out),
        "--device", "cpu", "--cache", str(tmp_path / "cache"),
    )  # fmt: skip
    assert code == 0, output
    assert out.read_bytes() == shipped_heads_path().read_bytes()
