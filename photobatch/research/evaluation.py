"""``photobatch evaluate captioner`` and ``evaluate hashtags``: score what a scan writes.

Captions are scored as a scan produces them (grounded: banned words, concept and scene captions,
no caption for blank frames; an empty caption is scored as an empty sentence), or, with
``raw=True``, as the captioner alone writes them. Hashtags are the non-personalized ones a scan
gives, scored against human tags.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from photobatch.core.config import Config
from photobatch.core.errors import UserError
from photobatch.core.text import letter_words
from photobatch.models.concepts import DOG_NOUNS, PERSON_NOUNS
from photobatch.training.metrics import format_scores, require_scorers, score_captions

if TYPE_CHECKING:
    from photobatch.models.prior import HashtagPrior

ENTITY_NOUNS = PERSON_NOUNS | DOG_NOUNS


@dataclass
class CaptionEvaluation:
    """Caption metrics, and how often a caption names a person or dog no reference mentions."""

    scores: dict[str, float]
    hallucinated: int  # photos with no person/dog in any reference whose caption names one
    unpeopled: int  # photos with no person/dog in any reference
    sources: Counter[str] = field(default_factory=Counter)  # caption sources (grounded only)

    def report(self) -> str:
        rate = self.hallucinated / self.unpeopled if self.unpeopled else 0.0
        lines = [
            format_scores(self.scores),
            f"hallucination {rate:.4f}  ({self.hallucinated} of the {self.unpeopled} photos "
            "with no person or dog in any reference get a caption naming one)",
        ]
        if self.sources:
            lines.append(
                "captions      " + ", ".join(f"{n} {s}" for s, n in self.sources.most_common())
            )
        return "\n".join(lines)


def hallucinations(references: dict[str, list[str]], hypotheses: dict[str, str]) -> tuple[int, int]:
    """(photos whose caption names a person or dog, photos whose references name none)."""
    free = [n for n, refs in references.items() if not letter_words(" ".join(refs)) & ENTITY_NOUNS]
    return sum(bool(letter_words(hypotheses[n]) & ENTITY_NOUNS) for n in free), len(free)


def evaluate_captioner(
    captions: Path,
    images: Path,
    splits: Path | None,
    model: Path | None = None,
    split: str = "val",
    device: str = "auto",
    cache_dir: Path | None = None,
    config: Config | None = None,
    raw: bool = False,
) -> CaptionEvaluation:
    """Caption one split's photos (all of them without splits) as a scan would, and score them.

    Beam settings and grounding heads come from ``config`` (default ``Config()``); features go
    through the same encoder and feature cache as training.
    """
    import torch

    from photobatch.core.config import data_home
    from photobatch.models.captioner import Captioner
    from photobatch.models.captions import CaptionDataError, read_captions, read_splits
    from photobatch.models.encoder import resolve_device
    from photobatch.models.grounding import Grounding
    from photobatch.training.captioner import split_images
    from photobatch.training.features import classify_features, encode_images

    require_scorers()  # before the photos are encoded and captioned
    config = config or Config()
    data = read_captions(captions)
    if splits is not None:
        data.splits = read_splits(splits)
    if split == "all":  # a test set of its own, such as broad/coco-dev
        names = data.images()
    elif data.splits:
        names = data.images(split)
    else:  # the very 5% hold-out that training kept out, not every photo
        train, val = split_images(data, None)
        names = {"train": train, "val": val}.get(split, [])
    if not names:
        raise CaptionDataError(f"{splits or captions}: no images in split '{split}'")
    dev = resolve_device(device)
    feats = encode_images(images, names, cache_dir or data_home() / "feature-cache", dev)
    captioner = Captioner(dev, replace(config.captioner, model=model))
    grounding = None if raw else Grounding(config.grounding.model)
    pooled, logits = classify_features(feats, dev) if grounding else (None, None)
    hypotheses: dict[str, str] = {}
    sources: Counter[str] = Counter()
    for lo in range(0, len(names), 100):
        batch = torch.from_numpy(feats[lo : lo + 100].astype("float32"))
        chunk = names[lo : lo + 100]
        if grounding is None:
            hypotheses.update(
                (n, r.text) for n, r in zip(chunk, captioner.caption(batch), strict=True)
            )
            continue
        assert pooled is not None and logits is not None
        grounded = grounding.caption(captioner, batch, pooled[lo : lo + 100], logits[lo : lo + 100])
        for name, (_, decision) in zip(chunk, grounded, strict=True):
            hypotheses[name] = decision.caption
            sources[decision.source] += 1
    references = {n: data.captions[n] for n in names}
    bad, free = hallucinations(references, hypotheses)
    return CaptionEvaluation(score_captions(references, hypotheses), bad, free, sources)


@dataclass
class HashtagEvaluation:
    """Top-5 hashtags against human tags, averaged over photos."""

    photos: int
    precision: float  # P@5: share of the top 5 that a human also gave
    recall: float  # R@5: share of the human tags found in the top 5
    hit_rate: float  # share of photos with at least one human tag in the top 5
    missing: int  # listed photos not found under the images folder

    def report(self) -> str:
        lines = [
            f"photos   {self.photos}",
            f"P@5      {self.precision:.4f}",
            f"R@5      {self.recall:.4f}",
            f"hit@5    {self.hit_rate:.4f}  (photos with >= 1 human tag in the top 5)",
        ]
        if self.missing:
            lines.append(f"missing  {self.missing} listed photos not found (not scored)")
        return "\n".join(lines)


def read_human_tags(
    path: Path, column: str = "tags", vocab: HashtagPrior | None = None
) -> dict[str, list[str]]:
    """``image,tags`` CSV -> {image: tags, normalized as hashtags are (with ``vocab``'s forms)}.

    In a ``tags`` column, tags are separated by spaces, commas or ``#``; any other column holds
    one tag a cell (a label such as "art gallery" -> ``artgallery``).
    """
    from photobatch.models.hashtags import dedupe, normalize_tag

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"image", column} <= set(reader.fieldnames):
                raise UserError(f"{path}: expected a CSV with columns 'image,{column}'")
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from exc
    tags: dict[str, list[str]] = {}
    for row in rows:
        cell = row[column] or ""
        items = re.split(r"[\s,#]+", cell) if column == "tags" else [cell]
        found = [t for t in (normalize_tag(i, vocab or ()) for i in items if i.strip()) if t]
        tags[row["image"]] = dedupe([*tags.get(row["image"], []), *found])
    return {image: t for image, t in tags.items() if t}


def evaluate_hashtags(
    tags_csv: Path, images: Path, config: Config, device: str, column: str = "tags", k: int = 5
) -> HashtagEvaluation:
    """Score the hashtags a scan gives the listed photos (before personalization)."""
    from photobatch.models.prior import default_prior
    from photobatch.models.stack import Analyzer

    human = read_human_tags(tags_csv, column, default_prior())
    paths = {image: images / image for image in human}
    present = {image: p for image, p in paths.items() if p.is_file()}
    if not present:
        raise UserError(f"{images}: none of the photos listed in {tags_csv} is there")
    predicted = Analyzer(config, device).candidates_for(sorted(present.values()))
    precision, recall, hits = [], [], []
    for image, path in present.items():
        top = set(predicted.get(path, [])[:k])
        found = len(top & set(human[image]))
        precision.append(found / k)
        recall.append(found / len(human[image]))
        hits.append(found > 0)
    n = len(precision)
    return HashtagEvaluation(
        n, sum(precision) / n, sum(recall) / n, sum(hits) / n, len(paths) - len(present)
    )
