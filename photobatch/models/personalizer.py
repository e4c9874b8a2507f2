"""Personalized hashtags and post drafts from the user's imported Instagram history.

Lifecycle: ``photobatch.training.personalizer`` builds the user's memory from their imported posts
and saves it with the index as ``personalizer.pt`` (plain tensors, lists and numbers, so
``torch.load(weights_only=True)`` reads it); at scan time ``PersonalHead`` (a
``photobatch.models.base.Model``) loads it lazily, ranks a photo's tags with
``Personalizer.written`` and drafts a post with ``draft_post``. Importing this module does not
import torch, so a scan can check which head ranked its photos for free.

Ranking (``models/PERSONALIZER.md`` has the derivation and the measurements): every tag in play
(the pipeline's candidates and the user's own tags) gets the scores of ``FEATURES``, and a
logistic model with fixed weights turns them into the probability that the user would post the
tag on this photo:

* ``vote``: the user's ``K_NEIGHBOURS`` most similar past photos vote for their tags with their
  cosine (MACON's user-habit memory; the benchmark's kNN vote), times how familiar the photo is;
* ``co-occurrence``: the highest P(tag | candidate) over the photo's candidates, from what the
  user's past posts showed and carried (InstaHash);
* ``frequency``: the share of the user's posts with the tag (used without photos);
* ``candidate``: 1 / (1 + rank) among the pipeline's candidates.

A habit that follows content (#goodboy follows a dog) is dropped from a photo whose candidates
show none of its anchors. A tag is written only when its probability reaches ``FLOOR``; a photo on
which no tag does gets the pipeline's own tags whose evidence reaches it. Lists are as long as the
evidence allows, at most ``hashtags.max_tags``. With fewer than ``MIN_PHOTOS`` past photos (an
export without its media), the vote is left out and ``TEXT_WEIGHTS`` rank from the text habits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photobatch.core.errors import UserError
from photobatch.core.text import tokenize
from photobatch.models.base import Model
from photobatch.models.personal_memory import (
    ANCHOR_LIFT,
    ANCHOR_SHARE,
    K_NEIGHBOURS,
    TOPIC_SHARE,
    Memory,
)

if TYPE_CHECKING:
    from photobatch.core.records import Analysis
    from photobatch.library.index import Index

FILE_NAME = "personalizer.pt"
# Below this many posts with hashtags no tag repeats often enough to tell a habit from a one-off.
MIN_TAGGED_POSTS = 10
# Below this many past photos the vote has too few neighbours to mean anything.
MIN_PHOTOS = 10
FORMAT = 4
# Formats 2 and 3 also held a CSMN head (and format 2 a mix fitted per user); their memory ranks
# as format 4's, the rest is ignored.
READABLE = (2, 3, FORMAT)
NO_POSTS = (
    "no imported posts: hashtags are not personalized "
    "(import an Instagram export, then run 'photobatch train personalizer')"
)

FEATURES = ("vote", "co-occurrence", "frequency", "candidate")
# Weights of FEATURES, then the bias, of the logistic model: fitted by ``photobatch evaluate
# personalizer --benchmark`` on the users of its "choose" half (every user, every history size),
# which prints them; the users it reports never chose them. Photo weights leave the frequency
# out (the vote carries it, scaled by familiarity, and a raw frequency put a dog lover's tags on
# food photos); text weights have no vote to use.
PHOTO_WEIGHTS = (5.18, 3.94, 0.0, 1.79, -4.64)
TEXT_WEIGHTS = (0.0, 3.78, 5.22, 1.72, -4.53)
# The probability a tag needs to be written: the one that writes the choose users' own tags best
# (F1 of the written set against the post's tags), among floors that keep a single-topic user's
# tags off 95% of photos of other subjects (the benchmark prints the sweep).
FLOOR = 0.15


class PersonalizerError(UserError, ValueError):
    """A personal head file that cannot be used; the message names the file and why."""


class Personalizer:
    """A user's ranking: the memory of their past posts; ``load`` then ``written`` /
    ``rank`` / ``draft_post``."""

    def __init__(self, memory: Memory, summary: str = "") -> None:
        self.memory = memory
        self.summary = summary
        self.weights = np.asarray(
            PHOTO_WEIGHTS if len(memory.bank) >= MIN_PHOTOS else TEXT_WEIGHTS, np.float64
        )

    @classmethod
    def load(cls, path: Path) -> Personalizer:
        import torch

        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
            if state.get("format") not in READABLE:
                raise ValueError(f"unsupported personalizer format {state.get('format')!r}")
            return cls(Memory.from_state(state["memory"]), str(state.get("summary", "")))
        except Exception as exc:  # truncated, not a torch file, or not a head: unusable alike
            problem = (str(exc).strip().splitlines() or [""])[0]
            raise PersonalizerError(
                f"{path}: cannot read this personal head ({type(exc).__name__}: {problem}): "
                "run 'photobatch train personalizer' again"
            ) from exc

    def save(self, path: Path) -> None:
        import torch

        state = {"format": FORMAT, "memory": self.memory.state(), "summary": self.summary}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def features(
        self, embedding: np.ndarray | None, candidates: Sequence[str]
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The tags in play (candidates first, then the user's tags), their ``FEATURES`` rows,
        and which of them are off-topic habits on this photo."""
        memory = self.memory
        votes, familiar = memory.vote(embedding) if embedding is not None else ({}, 0.0)
        co = memory.co_occurrence(candidates)
        ranks = {t: r for r, t in reversed(list(enumerate(dict.fromkeys(candidates))))}
        tags = list(dict.fromkeys([*ranks, *memory.frequency]))
        rows = [
            (
                familiar * votes.get(t, 0.0),
                co.get(t, 0.0),
                memory.frequency.get(t, 0.0),
                1 / (1 + ranks[t]) if t in ranks else 0.0,
            )
            for t in tags
        ]
        shown = set(ranks)
        off = np.array([memory.off_topic(t, shown) for t in tags], dtype=bool)
        x = np.array(rows, dtype=np.float64).reshape(len(tags), len(FEATURES))
        return tags, x, off

    def probabilities(self, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """The logistic model's probability for each row of ``x`` (``FEATURES``)."""
        w = self.weights if weights is None else weights
        return 1 / (1 + np.exp(-(x @ w[:-1] + w[-1])))

    def rank(self, embedding: np.ndarray | None, candidates: Sequence[str]) -> dict[str, float]:
        """Every tag in play that is not an off-topic habit, best first, with its probability."""
        tags, x, off = self.features(embedding, candidates)
        p = self.probabilities(x)
        order = sorted(range(len(tags)), key=lambda i: (-p[i], tags[i]))
        return {tags[i]: float(p[i]) for i in order if not off[i]}

    def written(
        self, embedding: np.ndarray | None, candidates: Sequence[str], k: int
    ) -> dict[str, float]:
        """The tags to write: the ranking's tags whose probability reaches ``FLOOR``, at most
        ``k``; empty when none does."""
        return above_floor(self.rank(embedding, candidates), k)

    def draft_post(self, embedding: np.ndarray, candidates: Sequence[str] = ()) -> str | None:
        """The user's own text of the most similar past photo that is at least as close as the
        user's typical neighbour, preferring one that mentions a candidate; None if none is."""
        memory = self.memory
        if not len(memory.bank):
            return None
        order, sims = memory.neighbours(embedding)
        mentions = set(candidates)
        best: tuple[int, float, str] | None = None
        for row, sim in zip(order, sims, strict=True):
            text = memory.texts[memory.photos[int(row)]]
            if not text or sim < memory.typical:
                continue
            hits = len(mentions & set(tokenize(text)))
            if best is None or (hits, sim) > best[:2]:
                best = (hits, float(sim), text)
        return best[2] if best else None


def above_floor(ranked: dict[str, float], k: int, floor: float = FLOOR) -> dict[str, float]:
    """The first ``k`` of ``ranked`` (best first) whose score reaches ``floor``, rounded."""
    return {t: round(p, 3) for t, p in list(ranked.items())[:k] if p >= floor}


def to_write(
    ranked: dict[str, float], evidence: dict[str, float], k: int, floor: float = FLOOR
) -> tuple[dict[str, float], bool]:
    """The hashtags a scan writes: the head's tags that reach ``floor``; when none does (the head
    abstains: a photo unlike the user's), the pipeline's tags whose ``evidence`` reaches it. The
    second value says whether the head abstained."""
    written = above_floor(ranked, k, floor)
    return (written, False) if written else (above_floor(evidence, k, floor), True)


class PersonalHead(Model):
    """The personal head trained with this index, if any; ranks the pipeline's hashtags.

    Its ``id`` (the version, None while no head is trained) is stored with each photo as
    ``personalized_by``: a scan re-ranks, without the image models, the photos another head ranked.
    """

    name = "personal"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.personalizer: Personalizer | None = None

    def files(self) -> tuple[Path, ...]:
        return (self.path,)

    def settings(self) -> dict[str, object]:
        # The ranking is code, not weights in the file: a new one re-ranks the photos an older
        # one ranked with the same memory.
        return {
            "photo": PHOTO_WEIGHTS,
            "text": TEXT_WEIGHTS,
            "floor": FLOOR,
            "neighbours": K_NEIGHBOURS,
            "anchors": (ANCHOR_SHARE, ANCHOR_LIFT, TOPIC_SHARE),
        }

    @property
    def id(self) -> str | None:
        return self.version if self.path.is_file() else None

    def _load(self) -> None:
        self.personalizer = Personalizer.load(self.path) if self.path.is_file() else None

    def personalize(self, analysis: Analysis, k: int) -> Analysis:
        """``analysis`` with the hashtags to write (at most ``k``), their scores and a post
        draft.

        Without a head or an embedding: the pipeline's tags with their evidence scores. With one:
        the tags the user would post, each with its probability, those under ``FLOOR`` left out;
        when none reaches it, the pipeline's tags whose evidence does. A photo with no candidates
        (grounding found no evidence: a blank frame, a screenshot) gets no tags and no draft.
        """
        self.load()
        head, embedding = self.personalizer, analysis.embedding
        candidates = analysis.candidates or analysis.hashtags
        tags = list(candidates)[:k]
        evidence = {t: analysis.candidate_scores[t] for t in tags if t in analysis.candidate_scores}
        scores, draft = evidence, None
        if head is not None and embedding is not None and candidates:
            vector = np.frombuffer(embedding, dtype="<f2").astype(np.float32)
            scores, _ = to_write(head.rank(vector, candidates), evidence, k)
            tags, draft = list(scores), head.draft_post(vector, candidates)
        ranked_by = self._loaded_version if head is not None else None
        return replace(
            analysis,
            hashtags=tags,
            hashtag_scores=scores,
            post_text=draft,
            personalized_by=ranked_by,
        )


@dataclass(frozen=True)
class PersonalizerStatus:
    """Where personalization stands for one index (``photobatch status`` words it)."""

    posts: int  # imported posts
    tagged: int  # imported posts with hashtags: at least MIN_TAGGED_POSTS to learn habits
    trained: str | None  # the summary of the head in use; None: hashtags are not personalized


def personalizer_status(index: Index, path: Path) -> PersonalizerStatus:
    """The imported posts and the personal head ``path`` of this index (a head is in use only
    with enough tagged posts)."""
    posts = index.posts()
    tagged = sum(1 for post in posts if post.hashtags)
    in_use = tagged >= MIN_TAGGED_POSTS and path.is_file()
    summary = Personalizer.load(path).summary if in_use else None
    return PersonalizerStatus(len(posts), tagged, summary)
