"""Normalization and ranking of hashtags, on real Flickr8k captions and the shipped prior."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from photobatch.core.text import format_hashtag, format_hashtags
from photobatch.models.hashtags import (
    dedupe,
    fold,
    is_well_formed,
    normalize_phrase,
    normalize_tag,
    singularize,
    suggest_hashtags,
)
from photobatch.models.prior import HashtagPrior, default_prior

ASCII_TAG = re.compile(r"^[a-z0-9_]+$")


@pytest.fixture(scope="module")
def prior() -> HashtagPrior:
    return default_prior()


@pytest.mark.parametrize(
    ("words", "tag"),
    [
        (["golden", "retriever"], "goldenretriever"),
        (["Golden", "Retrievers"], "goldenretriever"),
        (["dogs"], "dog"),
        (["puppies"], "puppy"),
        (["grass"], "grass"),
        (["dresses"], "dress"),
        (["benches"], "bench"),
        (["movies"], "movie"),
        (["men"], "man"),
        (["leaves"], "leaf"),
        (["Café"], "cafe"),
        (["Straße"], "strasse"),
        (["\uff24\uff2f\uff27"], "dog"),  # fullwidth DOG
        (["rock'n'roll"], "rocknroll"),
        (["Москва"], "москва"),
        (["東京"], "東京"),
        (["नमस्ते"], "नमस्ते"),
    ],
)
def test_normalize_phrase(words: list[str], tag: str) -> None:
    assert normalize_phrase(words) == tag
    assert is_well_formed(tag)


@pytest.mark.parametrize(
    "words", [["the"], ["a"], ["something"], ["side"], ["person"], ["two", "dogs"], ["7"], ["!"]]
)
def test_stop_and_generic_words_are_dropped(words: list[str]) -> None:
    assert normalize_phrase(words) is None


def test_prior_vocabulary_decides_the_form(prior: HashtagPrior) -> None:
    assert singularize("jeans", prior) == "jean"  # HARRISON's lemma
    assert singularize("clothes", prior) == "clothes"
    assert singularize("selfies", prior) == "selfie"
    assert singularize("sunglasses", prior) == "sunglass"


def test_fold_keeps_non_latin_and_drops_only_latin_accents() -> None:
    assert fold("Ñandú Øl") == "nandu ol"
    assert fold("Ελλάδα") == "ελλάδα"  # Greek keeps its tonos: never folded away


def test_normalize_tag_and_format() -> None:
    assert normalize_tag("#Golden-Hour") == "goldenhour"
    assert normalize_tag("  ") is None
    assert format_hashtag("dog") == "#dog"
    assert format_hashtags(["dog", "puppy"]) == "#dog #puppy"
    assert dedupe(["dog", "puppy", "dog"]) == ["dog", "puppy"]


def test_well_formedness() -> None:
    assert is_well_formed("dogsofinstagram")
    assert not is_well_formed("Dog") and not is_well_formed("dog!") and not is_well_formed("123")
    assert not is_well_formed("")


def _tag_ok(tag: str) -> bool:
    return bool(ASCII_TAG.match(tag)) if tag.isascii() else is_well_formed(tag)


@pytest.fixture(scope="module")
def val_captions(research_data: Path) -> dict[str, list[str]]:
    root = research_data / "flickr8k"
    with (root / "splits.csv").open(newline="") as f:
        val = [r["image"] for r in csv.DictReader(f) if r["split"] == "val"]
    captions: dict[str, list[str]] = {}
    with (root / "captions.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            captions.setdefault(row["image"], []).append(row["caption"])
    return {image: captions[image] for image in val[:40]}


def test_suggestions_on_real_val_captions(
    val_captions: dict[str, list[str]], prior: HashtagPrior
) -> None:
    dog_captions = 0
    for caps in val_captions.values():
        for caption in caps[:2]:
            tags = suggest_hashtags(caption, [], prior)
            assert 3 <= len(tags) <= 10, caption
            assert len(set(tags)) == len(tags)
            assert all(_tag_ok(t) for t in tags), tags
            if re.search(r"\bdog\b", caption.lower()):
                dog_captions += 1
                assert "dog" in tags, (caption, tags)
            if re.search(r"\bbeach\b", caption.lower()):
                assert "beach" in tags, (caption, tags)
    assert dog_captions >= 3


def test_dog_caption_ranking(prior: HashtagPrior) -> None:
    tags = suggest_hashtags("A black dog runs through the grass .", [], prior)
    assert tags[:2] == ["dog", "grass"]
    assert {"puppy", "dogsofinstagram"} & set(tags)
    assert tags == suggest_hashtags("A black dog runs through the grass .", [], prior)


def test_max_tags_is_respected(prior: HashtagPrior) -> None:
    assert len(suggest_hashtags("a dog on the beach", [], prior, max_tags=4)) == 4


@pytest.mark.parametrize("caption", [None, "", "   ", "the of a"])
def test_empty_caption_falls_back_to_labels(caption: str | None, prior: HashtagPrior) -> None:
    tags = suggest_hashtags(caption, ["tabby, tabby cat", "golden retriever"], prior)
    assert len(tags) >= 3 and tags[:2] == ["tabby", "goldenretriever"]
    assert {"catsofinstagram", "kitty"} & set(tags)
    assert all(_tag_ok(t) for t in tags)


def test_nothing_at_all_still_gives_min_tags(prior: HashtagPrior) -> None:
    tags = suggest_hashtags(None, [], prior, min_tags=3)
    assert len(tags) >= 3 and all(_tag_ok(t) for t in tags)
