"""``photobatch evaluate captioner``, ``evaluate hashtags`` and ``evaluate search``: score what a
scan writes.

Captions are scored as a scan produces them (grounded: banned words, concept and scene captions,
no caption for blank frames; an empty caption is scored as an empty sentence), or, with
``raw=True``, as the captioner alone writes them; then CHAIR (which objects they invent, with the
research data's synonyms file and the references as ground truth) and how well their confidence
predicts that. Hashtags are the non-personalized ones a scan gives, scored against human tags.
Search is the library's own, on an index of a scan of the photos.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from photobatch.core.config import Config
from photobatch.core.errors import UserError
from photobatch.core.text import letter_words
from photobatch.models.concepts import DOG_NOUNS, PERSON_NOUNS
from photobatch.training.chair import Chair, ChairVocabulary, chair, invented
from photobatch.training.metrics import (
    auroc,
    expected_calibration_error,
    format_scores,
    require_scorers,
    score_captions,
)

if TYPE_CHECKING:
    from photobatch.models.captions import CaptionSet
    from photobatch.models.prior import HashtagPrior

ENTITY_NOUNS = PERSON_NOUNS | DOG_NOUNS


def synonyms_file(path: Path | None = None) -> Path:
    """The CHAIR synonyms file: ``path``, else ``chair/synonyms.txt`` of the research data."""
    from photobatch.research.data import research_data

    return path if path is not None else research_data("chair", "synonyms.txt")


@dataclass
class Reliability:
    """CHAIR of a set of grounded captions, and what their confidence says about it."""

    photos: int
    chair: Chair  # every caption
    threshold: float  # the sidecar threshold: captions this confident are written
    described: Chair  # the captions that reach it
    auroc: float  # of the confidence, for "the caption invents no object"
    ece: float
    scores: dict[str, float]  # caption metrics with the captions under the threshold left empty

    def lines(self) -> list[str]:
        c, d = self.chair, self.described
        return [
            f"CHAIRs        {c.chair_s:.4f}  ({c.hallucinated} of the {c.captions} captions name "
            "one of COCO's objects that no reference mentions)",
            f"CHAIRi        {c.chair_i:.4f}  ({c.invented} of the {c.mentions} objects named)",
            f"coverage      {c.captions / self.photos:.4f}  ({c.captions} of the {self.photos} "
            "photos get a caption)",
            f"described     {d.captions / self.photos:.4f}  ({d.captions} of the {self.photos} "
            f"photos get a sidecar description: confidence >= {self.threshold:.2f})",
            f"CHAIRs-described {d.chair_s:.4f}  ({d.hallucinated} of the {d.captions} "
            "descriptions name an object no reference mentions)",
            f"CIDEr-described  {self.scores['CIDEr']:.4f}  (every photo counted; one without a "
            "description scores as an empty caption)",
            f'AUROC         {self.auroc:.4f}  (caption_confidence for "the caption invents no '
            f'object", over the {c.captions} captions)',
            f"ECE           {self.ece:.4f}  (expected calibration error of caption_confidence, "
            "10 bins)",
        ]


@dataclass
class CaptionEvaluation:
    """Caption metrics, how often a caption names a person or dog no reference mentions, and
    CHAIR with the confidence's reliability."""

    scores: dict[str, float]
    hallucinated: int  # photos with no person/dog in any reference whose caption names one
    unpeopled: int  # photos with no person/dog in any reference
    sources: Counter[str] = field(default_factory=Counter)  # caption sources (grounded only)
    chair: Chair | None = None  # CHAIR of every caption (raw captions: without reliability)
    reliability: Reliability | None = None  # grounded captions only
    photos: int = 0

    def report(self) -> str:
        rate = self.hallucinated / self.unpeopled if self.unpeopled else 0.0
        lines = [
            format_scores(self.scores),
            f"hallucination {rate:.4f}  ({self.hallucinated} of the {self.unpeopled} photos "
            "with no person or dog in any reference get a caption naming one)",
        ]
        if self.reliability is not None:
            lines += self.reliability.lines()
        elif self.chair is not None:
            c = self.chair
            lines += [
                f"CHAIRs        {c.chair_s:.4f}  ({c.hallucinated} of the {c.captions} captions "
                "name one of COCO's objects that no reference mentions)",
                f"CHAIRi        {c.chair_i:.4f}  ({c.invented} of the {c.mentions} objects named)",
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


def reliability(
    vocab: ChairVocabulary,
    references: dict[str, list[str]],
    hypotheses: dict[str, str],
    confidences: dict[str, float],
    threshold: float,
) -> Reliability:
    """CHAIR of ``hypotheses``, of those whose confidence reaches ``threshold`` (what sidecars
    write), and the confidence's AUROC and calibration error for "invents no object"."""
    captioned = [n for n, text in hypotheses.items() if text.strip()]
    right = [not invented(vocab, references[n], hypotheses[n]) for n in captioned]
    conf = [confidences[n] for n in captioned]
    written = {
        n: text if text.strip() and confidences[n] >= threshold else ""
        for n, text in hypotheses.items()
    }
    return Reliability(
        photos=len(hypotheses),
        chair=chair(vocab, references, hypotheses),
        threshold=threshold,
        described=chair(vocab, references, written),
        auroc=auroc(right, conf),
        ece=expected_calibration_error(right, conf),
        scores=score_captions(references, written, meteor=False),
    )


def caption_split(captions: Path, splits: Path | None, split: str) -> tuple[CaptionSet, list[str]]:
    """A caption data set and the photos of one split: ``all`` for every photo (a test set of
    its own, such as broad/coco-dev); without splits, the 5% hold-out training kept out."""
    from photobatch.models.captions import CaptionDataError, read_captions, read_splits
    from photobatch.training.captioner import split_images

    data = read_captions(captions)
    if splits is not None:
        data.splits = read_splits(splits)
    if split == "all":
        names = data.images()
    elif data.splits:
        names = data.images(split)
    else:  # the very 5% hold-out that training kept out, not every photo
        train, val = split_images(data, None)
        names = {"train": train, "val": val}.get(split, [])
    if not names:
        raise CaptionDataError(f"{splits or captions}: no images in split '{split}'")
    return data, names


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
    synonyms: Path | None = None,
) -> CaptionEvaluation:
    """Caption one split's photos (all of them without splits) as a scan would, and score them.

    Beam settings, grounding heads and the sidecar threshold come from ``config`` (default
    ``Config()``); features go through the same encoder and feature cache as training. CHAIR
    reads ``synonyms`` (default: the research data's ``chair/synonyms.txt``).
    """
    import torch

    from photobatch.core.config import data_home
    from photobatch.models.captioner import Captioner
    from photobatch.models.encoder import resolve_device
    from photobatch.models.grounding import Grounding
    from photobatch.training.features import classify_features, encode_images

    require_scorers()  # before the photos are encoded and captioned
    vocab = ChairVocabulary.read(synonyms_file(synonyms))
    config = config or Config()
    data, names = caption_split(captions, splits, split)
    dev = resolve_device(device)
    feats = encode_images(images, names, cache_dir or data_home() / "feature-cache", dev)
    captioner = Captioner(dev, replace(config.captioner, model=model))
    grounding = None if raw else Grounding(config.grounding.model)
    pooled, logits = classify_features(feats, dev) if grounding else (None, None)
    hypotheses: dict[str, str] = {}
    confidences: dict[str, float] = {}
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
            confidences[name] = decision.confidence
            sources[decision.source] += 1
    references = {n: data.captions[n] for n in names}
    bad, free = hallucinations(references, hypotheses)
    return CaptionEvaluation(
        score_captions(references, hypotheses),
        bad,
        free,
        sources,
        chair(vocab, references, hypotheses),
        None
        if grounding is None
        else reliability(
            vocab, references, hypotheses, confidences, config.sidecars.min_caption_confidence
        ),
        len(names),
    )


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


# Everyday objects a search is measured on by default (COCO classes the captioner can name).
SEARCH_WORDS = ("person", "dog", "cat", "car", "bus", "train", "pizza", "bed", "laptop", "chair")


@dataclass
class WordSearch:
    """One word's search against the photos whose references name it."""

    word: str
    relevant: int  # photos a reference of which names the word's object
    found: int  # photos the search returned
    right: int  # of them, relevant

    @property
    def precision(self) -> float:
        return self.right / self.found if self.found else float("nan")

    @property
    def recall(self) -> float:
        return self.right / self.relevant if self.relevant else float("nan")


@dataclass
class SearchEvaluation:
    """``photobatch search WORD`` for a list of words, every result counted."""

    photos: int
    words: list[WordSearch]

    def mean(self, measure: str) -> float:
        values = [getattr(w, measure) for w in self.words]
        values = [v for v in values if v == v]  # a word nothing was found for has no precision
        return sum(values) / len(values) if values else float("nan")

    def report(self) -> str:
        lines = [f"{'word':12s} relevant found right precision recall"]
        for w in self.words:
            lines.append(
                f"{w.word:12s} {w.relevant:8d} {w.found:5d} {w.right:5d} "
                f"{w.precision:9.3f} {w.recall:6.3f}"
            )
        lines += [
            f"precision {self.mean('precision'):.4f}  (mean over the words anything was found "
            "for: the share of found photos a reference of which names the word)",
            f"recall    {self.mean('recall'):.4f}  (mean over the words some photo shows: the "
            f"share of those photos found; {self.photos} photos searched)",
        ]
        return "\n".join(lines)


def evaluate_search(
    captions: Path,
    images: Path,
    config: Config,
    device: str,
    words: Sequence[str] = SEARCH_WORDS,
    splits: Path | None = None,
    split: str = "all",
    synonyms: Path | None = None,
) -> SearchEvaluation:
    """Scan the photos of a caption data set into a new index as ``photobatch scan`` does, then
    search each word with the library's search and score every result: a photo is relevant when
    one of its references names the word's object (CHAIR's synonyms)."""
    import tempfile

    from photobatch.library.index import Index
    from photobatch.scan.pipeline import Scanner

    vocab = ChairVocabulary.read(synonyms_file(synonyms))
    for word in words:
        if len(vocab.objects(word)) != 1:
            raise UserError(f"{word!r}: not one of COCO's objects in {synonyms_file(synonyms)}")
    data, names = caption_split(captions, splits, split)
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise UserError(f"{images / missing[0]}: listed in {captions} but not there")
    with tempfile.TemporaryDirectory(prefix="photobatch-search-") as tmp:
        library = Path(tmp) / "photos"
        library.mkdir()
        for name in names:
            (library / name).symlink_to((images / name).absolute())
        with Index(Path(tmp) / "index.db") as index:
            with Scanner(config, index, sidecars=False, device=device, progress=False) as scanner:
                scanner.scan([library])
            results = []
            for word in words:
                [target] = vocab.objects(word)
                relevant = {n for n in names if target in vocab.mentioned(data.captions[n])}
                found = {Path(h.path).name for h in index.search(word, None)}
                results.append(WordSearch(word, len(relevant), len(found), len(found & relevant)))
    return SearchEvaluation(len(names), results)
