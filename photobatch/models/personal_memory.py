"""The user's habit memory: their past posts, and what the ranking reads from them for one photo.

What ``photobatch.models.personalizer`` ranks with (MACON's user-habit memory, InstaHash's
content-to-tag co-occurrence): for every past post, its tags, its text, what it showed (the scan's
candidates of its photo; for a post without a photo, the words of its caption the hashtag prior
knows), and the pooled vector of its photo when the export had one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# The kNN vote: the K_NEIGHBOURS most similar past photos (cosine) vote for their tags, each with
# its cosine, and a tag's vote is its share of those weights (exactly the benchmark's kNN vote).
# How familiar a photo is scales that vote: a neighbour weighs exp((cosine - typical) / TAU),
# ``typical`` being the user's own mean neighbour similarity, plus PSEUDO weight of "no
# evidence", so a photo unlike anything the user posted (a bagel on a dog account) keeps little
# of its votes.
K_NEIGHBOURS = 10
TAU = 0.05
PSEUDO = 2.0
# Co-occurrence P(tag | a candidate of the photo): the user's own counts of posts that showed the
# candidate and carried the tag, smoothed towards the tag's frequency with this many pseudo-posts.
CO_SMOOTHING = 2.0
# A tag is a habit that follows content (#goodboy follows a dog) when nearly every post it is on
# (ANCHOR_SHARE) showed the same thing, and that thing is at least ANCHOR_LIFT times commoner on
# those posts than on the user's posts overall: that thing is its anchor. What nearly every post
# of the user showed (TOPIC_SHARE: a dog lover's dog) anchors every tag, since nothing tells the
# user's tags apart from it. A tag posted fewer than MIN_HABIT times gets no anchor.
ANCHOR_SHARE = 0.9
ANCHOR_LIFT = 2.0
TOPIC_SHARE = 0.8
MIN_HABIT = 3


@dataclass
class Memory:
    """The user's past posts as the ranking reads them: tags, text (hashtags and mentions
    removed, emoji kept) and what each post showed, for every post; unit photo vectors for the
    posts that had a photo (``photos[i]`` is the post of ``bank[i]``)."""

    tags: list[tuple[str, ...]]
    texts: list[str]
    shown: list[tuple[str, ...]]
    bank: np.ndarray = field(default_factory=lambda: np.zeros((0, 1280), np.float32))
    photos: list[int] = field(default_factory=list)
    typical: float = 0.0  # mean cosine of a past photo to its K_NEIGHBOURS nearest others

    def __post_init__(self) -> None:
        self.used = _counts(self.tags)  # posts per tag
        self.frequency = {t: n / len(self.tags) for t, n in self.used.items()}
        # What a post showed and carried counts as content for the co-occurrence: a dog post
        # tagged #dog links the candidate "dog" to #dogoftheday as its photo's candidates would.
        content = [set(s) | set(t) for s, t in zip(self.shown, self.tags, strict=True)]
        self.seen = _counts(content)
        self.pairs = _pairs(content, self.tags)
        self.anchors = self._anchors()

    def _anchors(self) -> dict[str, set[str]]:
        shown = _counts(self.shown)
        pairs = _pairs([set(s) for s in self.shown], self.tags)
        n = len(self.tags)
        anchors: dict[str, set[str]] = {}
        for c, row in pairs.items():
            share = shown[c] / n
            for t, k in row.items():
                on_t = k / self.used[t]
                topic = share >= TOPIC_SHARE
                follows = on_t >= ANCHOR_SHARE and on_t >= ANCHOR_LIFT * share
                if c != t and self.used[t] >= MIN_HABIT and (topic or follows):
                    anchors.setdefault(t, set()).add(c)
        return anchors

    @classmethod
    def build(
        cls,
        tags: Sequence[Sequence[str]],
        texts: Sequence[str],
        shown: Sequence[Sequence[str]],
        vectors: Sequence[np.ndarray | None],
    ) -> Memory:
        """The memory of posts given as parallel lists; a post's vector is None without a photo."""
        photos = [i for i, v in enumerate(vectors) if v is not None]
        bank = np.zeros((0, 1280), np.float32)
        typical = 0.0
        if photos:
            bank = unit(np.stack([vectors[i] for i in photos]).astype(np.float32))
            sims = bank @ bank.T
            np.fill_diagonal(sims, -np.inf)
            k = min(K_NEIGHBOURS, len(bank) - 1)
            typical = float(np.sort(sims, axis=1)[:, ::-1][:, :k].mean()) if k > 0 else 0.0
        return cls(
            [tuple(t) for t in tags],
            list(texts),
            [tuple(s) for s in shown],
            bank,
            photos,
            typical,
        )

    def neighbours(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bank rows of the ``K_NEIGHBOURS`` most similar past photos, nearest first, and their
        cosines."""
        sims = self.bank @ unit(vector)
        order = np.argsort(-sims, kind="stable")[:K_NEIGHBOURS]
        return order, sims[order]

    def vote(self, vector: np.ndarray) -> tuple[dict[str, float], float]:
        """Each tag's share of the cosine weights of the nearest past photos that carry it, and
        how familiar the photo is (0: unlike any past photo, towards 1: like many)."""
        if not len(self.bank):
            return {}, 0.0
        order, sims = self.neighbours(vector)
        cosines = np.maximum(sims, 0.0)
        total = float(cosines.sum()) or 1.0
        votes: dict[str, float] = {}
        for row, c in zip(order, cosines, strict=True):
            for t in self.tags[self.photos[int(row)]]:
                votes[t] = votes.get(t, 0.0) + float(c) / total
        evidence = float(np.exp((sims - self.typical) / TAU).sum())
        return votes, evidence / (evidence + PSEUDO)

    def co_occurrence(self, candidates: Sequence[str]) -> dict[str, float]:
        """For each of the user's tags, the highest P(tag | candidate) over the photo's
        candidates that the user's posts ever showed or carried (smoothed, ``CO_SMOOTHING``)."""
        scores: dict[str, float] = {}
        for c in dict.fromkeys(candidates):
            row, n_c = self.pairs.get(c), self.seen.get(c, 0)
            if not row:
                continue
            for t, k in row.items():
                p = (k + CO_SMOOTHING * self.frequency[t]) / (n_c + CO_SMOOTHING)
                scores[t] = max(scores.get(t, 0.0), p)
        return scores

    def off_topic(self, tag: str, candidates: set[str]) -> bool:
        """A habit that follows content none of which the photo's candidates show."""
        anchors = self.anchors.get(tag)
        return tag not in candidates and anchors is not None and not anchors & candidates

    def state(self) -> dict[str, object]:
        import torch

        return {
            "tags": [list(t) for t in self.tags],
            "texts": self.texts,
            "shown": [list(s) for s in self.shown],
            "bank": torch.from_numpy(self.bank.astype(np.float16)),
            "photos": self.photos,
            "typical": self.typical,
        }

    @classmethod
    def from_state(cls, state: dict) -> Memory:
        bank = state["bank"].numpy().astype(np.float32)
        tags = [tuple(t) for t in state["tags"]]
        if "shown" not in state:  # format 3: every post had a photo, "content" what it showed
            shown = [tuple(c) for c in state["content"]]
            photos = list(range(len(bank)))
            return cls(tags, list(state["texts"]), shown, bank, photos, float(state["typical"]))
        shown = [tuple(s) for s in state["shown"]]
        photos = [int(i) for i in state["photos"]]
        return cls(tags, list(state["texts"]), shown, bank, photos, float(state["typical"]))


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` (a vector or rows) scaled to length 1."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-8)


def _counts(tag_lists: Sequence[Sequence[str] | set[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tags in tag_lists:
        for t in set(tags):
            counts[t] = counts.get(t, 0) + 1
    return counts


def _pairs(content: Sequence[set[str]], tags: Sequence[Sequence[str]]) -> dict[str, dict[str, int]]:
    """content -> tag -> posts that showed the one and carried the other."""
    pairs: dict[str, dict[str, int]] = {}
    for shown, carried in zip(content, tags, strict=True):
        for c in shown:
            row = pairs.setdefault(c, {})
            for t in set(carried):
                row[t] = row.get(t, 0) + 1
    return pairs
