"""CHAIR (Rohrbach et al., EMNLP 2018): which of COCO's objects a caption names that no reference
mentions. What grounding's heads learn to predict and what ``evaluate captioner`` reports.

The object vocabulary is data: the synonyms file of the research data (``chair/synonyms.txt``, one
class a line, its name first and then the words and phrases that name it), read at run time and
never copied into photobatch. Reading follows the shared ``dev-check``: lower-case words of
letters, a plural counts as its singular (``-s``, ``-es``, ``-ies`` for ``-y``, and ``men``,
``women``), a two-word name is one term (a hot dog is not a dog), and the dining table is not
counted (references rarely mention the table under a plate). References are the only ground truth,
so CHAIR is an upper bound: they leave out objects that are there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from photobatch.core.errors import UserError

NOT_COUNTED = frozenset({"dining table"})
_WORD = re.compile(r"[a-z]+")
_IRREGULAR = {"men": "man", "women": "woman"}


@dataclass(frozen=True)
class ChairVocabulary:
    """Words and two-word phrases -> the COCO class they name."""

    names: Mapping[str, str]

    @classmethod
    def read(cls, path: Path) -> ChairVocabulary:
        """Read a synonyms file; a missing or empty one is a ``UserError`` naming it."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the CHAIR synonyms file: {exc}") from exc
        names: dict[str, str] = {}
        for line in lines:
            words = [w.strip() for w in line.split(",") if w.strip()]
            for word in words:
                names[word] = words[0]
        if not names:
            raise UserError(f"{path}: no object classes in this CHAIR synonyms file")
        return cls(names)

    @property
    def classes(self) -> list[str]:
        """The counted classes, sorted."""
        return sorted(set(self.names.values()) - NOT_COUNTED)

    def _singular(self, word: str) -> str:
        if word in _IRREGULAR:
            return _IRREGULAR[word]
        for cut, add in (("", ""), ("ies", "y"), ("es", ""), ("s", "")):
            stem = word[: len(word) - len(cut)] + add
            if word.endswith(cut) and stem in self.names:
                return stem
        return word

    def objects(self, text: str | None) -> set[str]:
        """The counted classes a text names."""
        words = [self._singular(w) for w in _WORD.findall((text or "").lower())]
        found, i = set(), 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in self.names:
                found.add(self.names[pair])
                i += 2
                continue
            if words[i] in self.names:
                found.add(self.names[words[i]])
            i += 1
        return found - NOT_COUNTED

    def mentioned(self, references: Iterable[str]) -> set[str]:
        """The classes any of a photo's references names: CHAIR's ground truth."""
        return set().union(*(self.objects(r) for r in references))


@dataclass(frozen=True)
class Chair:
    """CHAIR over a set of captions (empty captions are not counted)."""

    captions: int  # non-empty captions
    hallucinated: int  # of them, those naming an object no reference mentions (CHAIRs)
    mentions: int  # objects named, each once a caption
    invented: int  # of them, those no reference mentions (CHAIRi)

    @property
    def chair_s(self) -> float:
        return self.hallucinated / self.captions if self.captions else 0.0

    @property
    def chair_i(self) -> float:
        return self.invented / self.mentions if self.mentions else 0.0


def invented(vocab: ChairVocabulary, references: Sequence[str], caption: str) -> set[str]:
    """The objects a caption names that none of its references mentions."""
    return vocab.objects(caption) - vocab.mentioned(references)


def chair(
    vocab: ChairVocabulary, references: Mapping[str, Sequence[str]], captions: Mapping[str, str]
) -> Chair:
    """CHAIRs and CHAIRi of ``captions`` (image -> text) against their references."""
    counted = hallucinated = mentions = wrong = 0
    for image, caption in captions.items():
        if not caption.strip():
            continue
        named = vocab.objects(caption)
        bad = named - vocab.mentioned(references[image])
        counted += 1
        hallucinated += bool(bad)
        mentions += len(named)
        wrong += len(bad)
    return Chair(counted, hallucinated, mentions, wrong)
