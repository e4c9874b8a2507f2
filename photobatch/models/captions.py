"""Caption data: readers for the CSV and COCO-style JSON formats, and the vocabulary.

Training and evaluation both tokenize with :func:`photobatch.core.text.tokenize`, so the words the
model learns are the words the metrics compare (lower case, letters and digits only, punctuation
dropped).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photobatch.core.errors import UserError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID = 0  # every vocabulary starts with SPECIALS, so padding is always id 0


@dataclass
class CaptionSet:
    """Captions per image file name, and the split of each image when the source names one."""

    captions: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)

    def images(self, split: str | None = None) -> list[str]:
        """Image names in a stable order, all of them or those of one split."""
        names = sorted(self.captions)
        if split is None:
            return names
        return [name for name in names if self.splits.get(name) == split]


class CaptionDataError(UserError, ValueError):
    """A captions or splits file that cannot be used; the message names the file and why."""


# What a file of the wrong kind or encoding raises while being parsed.
_UNREADABLE = (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError, KeyError, TypeError)


def read_captions(path: Path) -> CaptionSet:
    """Read ``image,caption`` CSV (Flickr8k here) or caption JSON (COCO, Karpathy's splits)."""
    try:
        return _read_json(path) if path.suffix.lower() == ".json" else _read_csv(path)
    except _UNREADABLE as exc:
        raise _not_a("captions", path, exc) from exc


def _not_a(kind: str, path: Path, exc: Exception) -> CaptionDataError:
    return CaptionDataError(f"{path}: not a {kind} file ({type(exc).__name__}: {exc})")


def _read_csv(path: Path) -> CaptionSet:
    result = CaptionSet()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
            raise CaptionDataError(f"{path}: expected a CSV with columns 'image,caption'")
        for row in reader:
            result.captions.setdefault(row["image"], []).append(row["caption"])
    return result


def _read_json(path: Path) -> CaptionSet:
    """COCO (``images`` + ``annotations``) or Karpathy (``images[].sentences``) caption JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))
    result = CaptionSet()
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise CaptionDataError(f"{path}: expected a JSON object with an 'images' list")
    if "annotations" in data:
        names = {image["id"]: image["file_name"] for image in images}
        for ann in data["annotations"]:
            result.captions.setdefault(names[ann["image_id"]], []).append(ann["caption"])
        return result
    for image in images:
        name = image["filename"]
        result.captions[name] = [s["raw"] for s in image["sentences"]]
        if "split" in image:
            # Karpathy's "restval" is extra training data in every published recipe.
            split = image["split"]
            result.splits[name] = "train" if split == "restval" else split
    return result


def read_splits(path: Path) -> dict[str, str]:
    """``image,split`` CSV -> {image: split}."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"image", "split"} <= set(reader.fieldnames):
                raise CaptionDataError(f"{path}: expected a CSV with columns 'image,split'")
            return {row["image"]: row["split"] for row in reader}
    except _UNREADABLE as exc:
        raise _not_a("splits", path, exc) from exc


class Vocabulary:
    """Word <-> id mapping; serialized as a plain list of words so checkpoints stay weights-only."""

    def __init__(self, words: Sequence[str]) -> None:
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        self.pad, self.start, self.end, self.unk = (self.index[s] for s in SPECIALS)

    @property
    def non_words(self) -> tuple[int, ...]:
        """Ids a caption must never contain: ``<pad>``, ``<start>`` and ``<unk>``."""
        return (self.pad, self.start, self.unk)

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_count: int = 5) -> Vocabulary:
        """Keep words seen at least ``min_count`` times, most frequent first (ties by spelling)."""
        counts = Counter(word for sentence in sentences for word in sentence)
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids for ``<start> tokens <end>``; unknown words become ``<unk>``."""
        return [self.start, *(self.index.get(t, self.unk) for t in tokens), self.end]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for ids, stopping at ``<end>`` and skipping the other special tokens."""
        words = []
        for i in ids:
            if i == self.end:
                break
            if i >= len(SPECIALS):
                words.append(self.words[i])
        return words

    def to_list(self) -> list[str]:
        return list(self.words)
