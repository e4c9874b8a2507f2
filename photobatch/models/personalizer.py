"""Personalized hashtags and post drafts from the user's imported Instagram history.

Lifecycle: ``photobatch.training.personalizer`` fits the ranking on the user's imported posts and
saves it with the index as ``personalizer.pt`` (plain tensors, lists and numbers, so
``torch.load(weights_only=True)`` reads it); at scan time ``PersonalHead`` (a
``photobatch.models.base.Model``) loads it lazily and re-ranks a photo's pipeline candidates with
``Personalizer.rerank`` (best first) and ``draft_post``. Importing this module does not import
torch, so a scan can check which head ranked its photos for free.

Ranking: every tag in play (the pipeline's candidates and the user's own tags) gets four scores
that condition on the photo, and a fixed weighted sum (``WEIGHTS``) ranks them, led by the vote:

* ``vote``: the user's ``K_NEIGHBOURS`` most similar past photos vote for their tags, weighted by
  cosine similarity (MACON's user-habit memory; the benchmark's kNN vote), times how familiar the
  photo is (``Memory.vote``), so photos unlike the history get small votes;
* ``candidate``: 1 / (1 + rank) among the pipeline's candidates;
* ``co-occurrence``: P(user tag | content tag) from what the past photos showed (their stored
  candidates, else their tags) to what the user posted, backed off to HARRISON (InstaHash);
* ``csmn``: the CSMN head's noisy-or probability of emitting the tag, times the familiarity.

A tag that follows content (``Memory.anchors``: what the photos it was posted on nearly always
show, #goodboy -> dog) ranks below every other tag on a photo whose candidates show none of its
anchors; signature tags have no anchors and stay on everything. Drafts are the user's own text of
the most similar past photo that is at least as close as their typical neighbour, emoji kept,
else None.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photobatch.core.errors import UserError
from photobatch.core.text import tokenize
from photobatch.models.base import Model
from photobatch.models.personal_memory import K_NEIGHBOURS, MIN_HABIT, Memory, unit

if TYPE_CHECKING:
    import torch

    from photobatch.core.records import Analysis
    from photobatch.library.index import Index
    from photobatch.models.nn.csmn import CSMN

FILE_NAME = "personalizer.pt"
# Below this many posts with hashtags no tag repeats often enough to tell a habit from a one-off.
MIN_TAGGED_POSTS = 10
FORMAT = 3
# Format 2 also held the weights of a mix fitted per user; its head and memory rank as format 3's.
READABLE = (2, FORMAT)
NO_POSTS = (
    "no imported posts: hashtags are not personalized "
    "(import an Instagram export, then run 'photobatch train personalizer')"
)


class Vocab:
    """Token <-> id with the CSMN special tokens first."""

    def __init__(self, tokens: Sequence[str]) -> None:
        from photobatch.models.nn.csmn import SPECIALS

        self.tokens = [*SPECIALS, *(t for t in tokens if t not in SPECIALS)]
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        from photobatch.models.nn.csmn import UNK

        return [self.ids.get(t, UNK) for t in tokens]


@dataclass
class Head:
    """One trained CSMN with its vocabulary and the user context it reads."""

    model: CSMN
    vocab: Vocab
    context: list[str]

    def context_ids(self) -> torch.Tensor:
        import torch

        from photobatch.models.nn.csmn import PAD, UNK

        ids = [i for i in self.vocab.encode(self.context) if i != UNK]
        ids = ids[: self.model.config.context_len]
        return torch.tensor(ids + [PAD] * (self.model.config.context_len - len(ids)))

    def decode(self, embedding: np.ndarray, beam_size: int, unique: bool) -> tuple[list[str], list]:
        import torch

        self.model.eval()
        image = torch.as_tensor(np.asarray(embedding, dtype=np.float32))
        with one_thread():
            ids, dists = self.model.beam(image, self.context_ids(), beam_size, unique=unique)
        return [self.vocab.tokens[i] for i in ids], dists

    def state(self) -> dict[str, object]:
        return {
            "config": self.model.config.to_dict(),
            "weights": self.model.state_dict(),
            "vocab": self.vocab.tokens,
            "context": self.context,
        }

    @classmethod
    def from_state(cls, state: dict) -> Head:
        from photobatch.models.nn.csmn import CSMN, SPECIALS, CSMNConfig

        model = CSMN(CSMNConfig.from_dict(state["config"]))
        model.load_state_dict(state["weights"])
        model.eval()
        return cls(model, Vocab(state["vocab"][len(SPECIALS) :]), list(state["context"]))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the head on one intra-op thread, then restore the setting.

    Its kernels are tiny (a 64-d memory of ~40 cells): thread hand-offs cost more than they save,
    measured 0.05 s per training step on one thread against 0.46 s on two on a shared 2-core CPU.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PersonalizerError(UserError, ValueError):
    """A personal head file that cannot be used; the message names the file and why."""


FEATURES = ("vote", "candidate", "co-occurrence", "csmn")
# The vote leads; the others reorder what it leaves close and fill in where it is faint. Chosen on
# the four benchmark users (mean F1@5 over 50-1,000 past posts, flat from 0.05 to 0.1 for the
# candidates, 0.1 to 0.4 for the co-occurrence, 0.1 to 0.2 for the head). Fixed, not fitted per
# user: a mix fitted on the latest fifth of a user's posts ranked below the vote it contained
# (the README's benchmark section has the numbers).
WEIGHTS = (1.0, 0.1, 0.2, 0.1)


class Personalizer:
    """A user's trained ranking: the CSMN head and the memory of past posts; ``load`` then
    ``rerank`` / ``draft_post``."""

    def __init__(self, tags: Head, memory: Memory, summary: str = "", beam_size: int = 3) -> None:
        self.tags = tags
        self.memory = memory
        self.summary = summary
        self.beam_size = beam_size

    @classmethod
    def load(cls, path: Path) -> Personalizer:
        import torch

        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
            if state.get("format") not in READABLE:
                raise ValueError(f"unsupported personalizer format {state.get('format')!r}")
            return cls(
                Head.from_state(state["tags"]),
                Memory.from_state(state["memory"]),
                str(state.get("summary", "")),
            )
        except Exception as exc:  # truncated, not a torch file, or not a head: unusable alike
            problem = (str(exc).strip().splitlines() or [""])[0]
            raise PersonalizerError(
                f"{path}: cannot read this personal head ({type(exc).__name__}: {problem}): "
                "run 'photobatch train personalizer' again"
            ) from exc

    def save(self, path: Path) -> None:
        import torch

        state = {
            "format": FORMAT,
            "tags": self.tags.state(),
            "memory": self.memory.state(),
            "summary": self.summary,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def generate(self, embedding: np.ndarray) -> list[str]:
        """The head's own hashtags for a photo (beam search, no duplicates), in order."""
        return self.tags.decode(embedding, self.beam_size, unique=True)[0]

    def tag_scores(self, embedding: np.ndarray) -> tuple[list[str], dict[str, float]]:
        """Generated tags and, for every vocabulary tag, 1 - prod_t (1 - p_t(tag)) along them."""
        import torch

        from photobatch.models.nn.csmn import SPECIALS

        generated, dists = self.tags.decode(embedding, self.beam_size, unique=True)
        miss = torch.ones(len(self.tags.vocab))
        for p in dists:
            miss = miss * (1 - p)
        hit = (1 - miss).tolist()
        tokens = self.tags.vocab.tokens
        scores = {tokens[i]: hit[i] for i in range(len(SPECIALS), len(tokens))}
        return generated, scores

    def features(
        self, embedding: np.ndarray, candidates: Sequence[str]
    ) -> tuple[list[str], np.ndarray]:
        """The tags in play (candidates, the user's tags) and their ``FEATURES`` rows.

        The vote and the head's scores are scaled by how familiar the photo is, so habits learnt
        on dogs do not outrank what the pipeline sees in a bagel; the co-occurrence follows the
        photo's candidates by construction."""
        votes, familiar = self.memory.vote(embedding)
        _, head = self.tag_scores(embedding)
        co = self.memory.co_occurrence(candidates)
        ranks = {t: r for r, t in reversed(list(enumerate(dict.fromkeys(candidates))))}
        tags = list(dict.fromkeys([*ranks, *self.memory.frequency]))
        rows = [
            (
                familiar * votes.get(t, 0.0),
                1 / (1 + ranks[t]) if t in ranks else 0.0,
                co.get(t, 0.0),
                familiar * head.get(t, 0.0),
            )
            for t in tags
        ]
        return tags, np.array(rows, dtype=np.float64).reshape(len(tags), len(FEATURES))

    def rerank(self, embedding: np.ndarray, candidates: Sequence[str], k: int) -> list[str]:
        """Best-first tags from the pipeline's ``candidates`` and the user's own tags."""
        return list(self.rerank_scored(embedding, candidates, k))

    def rerank_scored(
        self, embedding: np.ndarray, candidates: Sequence[str], k: int
    ) -> dict[str, float]:
        """Best-first tags: the pipeline's ``candidates`` and the user's own tags, each with its
        ``WEIGHTS`` sum relative to the first tag's (capped by the tag above, so scores read best
        first). A tag that follows content (it has anchors) ranks below every other tag when none
        of its anchors is among the candidates (what the photo shows): #goodboy stays on dogs,
        content tags fill the other photos."""
        tags, x = self.features(embedding, candidates)
        score = x @ np.asarray(WEIGHTS)
        best = self._order(tags, score, candidates)[:k]
        top = max(float(score[best[0]]), 1e-9) if best else 1.0
        ranked, cap = {}, 1.0
        for i in best:
            cap = min(cap, float(score[i]) / top)
            ranked[tags[i]] = round(cap, 3)
        return ranked

    def _order(
        self, tags: Sequence[str], score: np.ndarray, candidates: Sequence[str]
    ) -> list[int]:
        """Indices of ``tags`` best first by ``score``, a content-following tag whose anchors the
        photo does not show after every other (the rule ``rerank_scored`` describes). Anchors are
        learnt from every candidate of the past photos, so every candidate counts as shown: with
        only the first five, a habit tag fell off photos of its subject whenever the scan named
        that subject lower."""
        shown = set(candidates)
        anchors = self.memory.anchors

        def off_topic(i: int) -> bool:
            t = tags[i]
            return t not in shown and t in anchors and not anchors[t] & shown

        return sorted(range(len(tags)), key=lambda i: (off_topic(i), -score[i], tags[i]))

    def draft_post(self, embedding: np.ndarray, candidates: Sequence[str] = ()) -> str | None:
        """The user's own text of the most similar past photo that is at least as close as the
        user's typical neighbour, preferring one that mentions a candidate; None if none is."""
        sims = self.memory.bank @ unit(embedding)
        mentions = set(candidates)
        best: tuple[int, float, str] | None = None
        for i in np.argsort(-sims, kind="stable")[:K_NEIGHBOURS]:
            text = self.memory.texts[int(i)]
            if not text or sims[i] < self.memory.typical:
                continue
            hits = len(mentions & set(tokenize(text)))
            if best is None or (hits, sims[i]) > best[:2]:
                best = (hits, float(sims[i]), text)
        return best[2] if best else None


class PersonalHead(Model):
    """The personal head trained with this index, if any; re-ranks pipeline hashtags.

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
        # one ranked with the same head (e.g. the per-user mixes of format 2).
        return {"weights": WEIGHTS, "neighbours": K_NEIGHBOURS, "min_habit": MIN_HABIT}

    @property
    def id(self) -> str | None:
        return self.version if self.path.is_file() else None

    def _load(self) -> None:
        self.personalizer = Personalizer.load(self.path) if self.path.is_file() else None

    def personalize(self, analysis: Analysis, k: int) -> Analysis:
        """``analysis`` with its ``candidates`` re-ranked (the first ``k`` kept), their scores and
        a post draft.

        Without a head or an embedding: the pipeline's tags with their evidence scores. With one:
        its re-ranking, scored relative to its top tag. A photo with no candidates (grounding found
        no evidence: a blank frame, a screenshot) gets no tags and no draft from the head either.
        """
        self.load()
        head, embedding = self.personalizer, analysis.embedding
        candidates = analysis.candidates or analysis.hashtags
        tags = list(candidates)[:k]
        scores = {t: analysis.candidate_scores[t] for t in tags if t in analysis.candidate_scores}
        draft = None
        if head is not None and embedding is not None and candidates:
            vector = np.frombuffer(embedding, dtype="<f2").astype(np.float32)
            scores = head.rerank_scored(vector, candidates, k)
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
    posts = len(index.post_ids())
    tagged = sum(1 for post in index.posts() if post.hashtags) if posts else 0
    in_use = tagged >= MIN_TAGGED_POSTS and path.is_file()
    return PersonalizerStatus(posts, tagged, Personalizer.load(path).summary if in_use else None)
