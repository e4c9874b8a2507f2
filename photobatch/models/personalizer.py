"""Personalized hashtags and post drafts from the user's imported Instagram history (CSMN head).

Lifecycle: ``photobatch.training.personalizer`` fits two CSMN heads on the user's imported posts
(hashtags, and post text for the draft) and saves them with the index as ``personalizer.pt``
(plain tensors, lists and numbers, so ``torch.load(weights_only=True)`` reads it); at scan time
``PersonalHead`` (a ``photobatch.models.base.Model``) loads it lazily and re-ranks a photo's
pipeline hashtags with ``Personalizer.rerank`` (best first) and ``draft_post``. Importing this
module does not import torch, so a scan can check which head ranked its photos for free.

Reranking: the head decodes its own tags (beam search, no duplicates) and scores every tag of its
vocabulary by the noisy-or of its probability over the decoding steps; each pipeline candidate
adds ``candidate_weight / (1 + rank)``, so the pipeline's content tags survive where the user has
no history for them, and the user's habits and signature tags rise where the head knows them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photobatch.core.errors import UserError
from photobatch.models.base import Model

if TYPE_CHECKING:
    import torch

    from photobatch.core.records import Analysis
    from photobatch.library.index import Index
    from photobatch.models.nn.csmn import CSMN

FILE_NAME = "personalizer.pt"
FORMAT = 1
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


class Personalizer:
    """Trained heads for one user; ``load`` then ``rerank`` / ``draft_post``."""

    def __init__(
        self,
        tags: Head,
        draft: Head | None,
        summary: str = "",
        candidate_weight: float = 0.5,
        beam_size: int = 3,
    ) -> None:
        self.tags = tags
        self.draft = draft
        self.summary = summary
        self.candidate_weight = candidate_weight
        self.beam_size = beam_size

    @classmethod
    def load(cls, path: Path) -> Personalizer:
        import torch

        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
            if state.get("format") != FORMAT:
                raise ValueError(f"unsupported personalizer format {state.get('format')!r}")
            draft = Head.from_state(state["draft"]) if state.get("draft") else None
            return cls(Head.from_state(state["tags"]), draft, str(state.get("summary", "")))
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
            "draft": self.draft.state() if self.draft else {},
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

    def rerank(self, embedding: np.ndarray, candidates: Sequence[str], k: int) -> list[str]:
        """Best-first tags from the pipeline's ``candidates`` and the head's own tags."""
        return list(self.rerank_scored(embedding, candidates, k))

    def rerank_scored(
        self, embedding: np.ndarray, candidates: Sequence[str], k: int
    ) -> dict[str, float]:
        """:meth:`rerank` with each tag's score divided by the best one's (the top tag has 1)."""
        generated, scores = self.tag_scores(embedding)
        total = {t: scores.get(t, 0.0) for t in generated}
        for rank, tag in enumerate(dict.fromkeys(candidates)):
            total[tag] = scores.get(tag, 0.0) + self.candidate_weight / (1 + rank)
        for tag, s in scores.items():
            total.setdefault(tag, s)
        best = sorted(total, key=lambda t: (-total[t], t))[:k]
        top = total[best[0]] if best and total[best[0]] > 0 else 1.0
        return {t: round(total[t] / top, 3) for t in best}

    def draft_post(self, embedding: np.ndarray) -> str:
        """A short caption in the user's words ("" when no captions were imported)."""
        if self.draft is None:
            return ""
        tokens = self.draft.decode(embedding, self.beam_size, unique=False)[0]
        text = " ".join(tokens)
        return text[:1].upper() + text[1:] + "." if text else ""


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
            tags, draft = list(scores), head.draft_post(vector) or None
        ranked_by = self._loaded_version if head is not None else None
        return replace(
            analysis,
            hashtags=tags,
            hashtag_scores=scores,
            post_text=draft,
            personalized_by=ranked_by,
        )


def personalizer_status(index: Index, path: Path) -> str:
    """One line for ``photobatch status``."""
    if not index.post_ids():
        return f"personalizer: {NO_POSTS}"
    if not path.is_file():
        return (
            f"personalizer: {len(index.post_ids())} imported posts, not trained yet: hashtags are "
            "not personalized (run 'photobatch train personalizer')"
        )
    return f"personalizer: trained ({Personalizer.load(path).summary})"
