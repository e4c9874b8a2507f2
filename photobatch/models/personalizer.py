"""Personalized hashtags and post drafts from the user's imported Instagram history (CSMN head).

Lifecycle: ``train_personalizer`` fits two CSMN heads on the user's imported posts (hashtags, and
post text for the draft) and saves them with the index as ``personalizer.pt`` (plain tensors,
lists and numbers, so ``torch.load(weights_only=True)`` reads it); at scan time
``Personalizer.load(path)`` and then ``rerank`` (hashtags, best first) and ``draft_post``.

Reranking: the head decodes its own tags (beam search, no duplicates) and scores every tag of its
vocabulary by the noisy-or of its probability over the decoding steps; each pipeline candidate
adds ``candidate_weight / (1 + rank)``, so the pipeline's content tags survive where the user has
no history for them, and the user's habits and signature tags rise where the head knows them.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from photobatch.instagram.export import STOPWORDS
from photobatch.models.nn.csmn import BOS, CSMN, EOS, PAD, SPECIALS, UNK, CSMNConfig

if TYPE_CHECKING:
    from photobatch.library.index import Index
    from photobatch.library.index import Post as IndexPost

FILE_NAME = "personalizer.pt"
FORMAT = 1
NO_POSTS = (
    "no imported posts: hashtags are not personalized "
    "(import an Instagram export, then run 'photobatch train personalizer')"
)
TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class HistoryPost:
    """One of the user's past posts as the head learns from it (hashtags without '#')."""

    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    embedding: np.ndarray  # (1280,) pooled encoder vector


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. 40 epochs of batch 32 at lr 3e-3 fit 800 posts in about a minute on a
    2-core CPU and converge on the benchmark users (loss flat after ~30 epochs)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0
    use_context: bool = True  # False: the "CSMN without user context" ablation
    draft: bool = True  # also train the post-text head


def words(text: str) -> list[str]:
    """Lower-case word tokens of a caption (hashtags and mentions stripped)."""
    text = re.sub(r"[#@]\S+", " ", text.lower())
    return TOKEN.findall(text)


def user_context(posts: Sequence[HistoryPost], idf: Callable[[str], float], size: int) -> list[str]:
    """The user's top-``size`` TF-IDF hashtags and caption words, decreasing score.

    The same profile as ``instagram.user_profile`` (TF = share of posts using a term, background
    IDF from HARRISON so #love ranks below a tag this user uses unusually often), for posts that
    are not in an index (the benchmark users). Terms used once say nothing about habits: skipped.
    """
    tf: Counter[str] = Counter()
    for post in posts:
        tf.update(set(post.hashtags) | {w for w in words(post.caption) if w not in STOPWORDS})
    scored = [(n / len(posts) * idf(t), t) for t, n in tf.items() if n >= 2 and len(t) > 1]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [t for _, t in scored[:size]]


class Vocab:
    """Token <-> id with the CSMN special tokens first."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = [*SPECIALS, *(t for t in tokens if t not in SPECIALS)]
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.ids.get(t, UNK) for t in tokens]


@dataclass
class Head:
    """One trained CSMN with its vocabulary and the user context it reads."""

    model: CSMN
    vocab: Vocab
    context: list[str]

    def context_ids(self) -> torch.Tensor:
        ids = [i for i in self.vocab.encode(self.context) if i != UNK]
        ids = ids[: self.model.config.context_len]
        return torch.tensor(ids + [PAD] * (self.model.config.context_len - len(ids)))

    def decode(self, embedding: np.ndarray, beam_size: int, unique: bool) -> tuple[list[str], list]:
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
        model = CSMN(CSMNConfig.from_dict(state["config"]))
        model.load_state_dict(state["weights"])
        model.eval()
        return cls(model, Vocab(state["vocab"][len(SPECIALS) :]), list(state["context"]))


def tag_order(posts: Sequence[HistoryPost]) -> Callable[[Sequence[str]], list[str]]:
    """Target order for a post's tags: the user's most frequent first (ties by name).

    CSMN generates a sequence but hashtags are a set; a fixed frequent-first order makes the
    first steps the confident ones, which is what greedy and beam decoding reward.
    """
    freq = Counter(t for p in posts for t in set(p.hashtags))
    return lambda tags: sorted(set(tags), key=lambda t: (-freq[t], t))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the head on one intra-op thread, then restore the setting.

    Its kernels are tiny (a 64-d memory of ~40 cells): thread hand-offs cost more than they save,
    measured 0.05 s per training step on one thread against 0.46 s on two on a shared 2-core CPU.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_head(
    examples: Sequence[tuple[np.ndarray, list[str]]],
    vocab_tokens: Sequence[str],
    context: list[str],
    config: CSMNConfig,
    settings: TrainSettings,
    progress: str | None = None,
) -> Head:
    """Teacher-forced training of one CSMN on (embedding, target tokens) pairs; deterministic."""
    with one_thread():
        return _fit(examples, vocab_tokens, context, config, settings, progress)


def _fit(
    examples: Sequence[tuple[np.ndarray, list[str]]],
    vocab_tokens: Sequence[str],
    context: list[str],
    config: CSMNConfig,
    settings: TrainSettings,
    progress: str | None,
) -> Head:
    torch.manual_seed(settings.seed)
    vocab = Vocab(vocab_tokens)
    config = replace(config, vocab_size=len(vocab))
    model = CSMN(config)
    head = Head(model, vocab, context if settings.use_context else [])
    images = torch.tensor(np.stack([e for e, _ in examples]), dtype=torch.float32)
    rows = []
    for _, tokens in examples:
        ids = [BOS, *vocab.encode(tokens[: config.max_len]), EOS]
        rows.append(ids + [PAD] * (config.max_len + 2 - len(ids)))
    seqs = torch.tensor(rows)
    ctx = head.context_ids().unsqueeze(0)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(settings.seed)
    n = len(examples)
    steps = settings.epochs * math.ceil(n / settings.batch_size)
    bar = tqdm(total=steps, desc=progress, disable=progress is None, leave=False)
    model.train()
    for _ in range(settings.epochs):
        for batch in torch.randperm(n, generator=gen).split(settings.batch_size):
            seq = seqs[batch]
            seq = seq[:, : int((seq != PAD).sum(1).max())]  # no steps past the longest target
            logits = model(images[batch], ctx.expand(len(batch), -1), seq[:, :-1])
            loss = F.cross_entropy(logits.transpose(1, 2), seq[:, 1:], ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()
    return head


def fit_tag_head(
    posts: Sequence[HistoryPost], context: list[str], settings: TrainSettings, progress: str | None
) -> Head:
    order = tag_order(posts)
    examples = [(p.embedding, order(p.hashtags)) for p in posts if p.hashtags]
    vocab = sorted({t for _, tags in examples for t in tags} | set(context))
    return fit_head(examples, vocab, context, CSMNConfig(vocab_size=0), settings, progress)


def fit_draft_head(
    posts: Sequence[HistoryPost], context: list[str], settings: TrainSettings, progress: str | None
) -> Head | None:
    """Post-text head (CSMN's post generation): the user's words, rare ones as <unk>."""
    examples = [(p.embedding, words(p.caption)) for p in posts if words(p.caption)]
    if not examples:
        return None
    counts = Counter(w for _, ws in examples for w in ws)
    vocab = sorted({w for w, c in counts.items() if c >= 2} | set(context))
    config = CSMNConfig(vocab_size=0, max_len=16)
    return fit_head(examples, vocab, context, config, settings, progress)


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
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT:
            raise ValueError(f"{path}: unsupported personalizer format {state.get('format')!r}")
        draft = Head.from_state(state["draft"]) if state.get("draft") else None
        return cls(Head.from_state(state["tags"]), draft, str(state.get("summary", "")))

    def save(self, path: Path) -> None:
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
        generated, scores = self.tag_scores(embedding)
        total = {t: scores.get(t, 0.0) for t in generated}
        for rank, tag in enumerate(dict.fromkeys(candidates)):
            total[tag] = scores.get(tag, 0.0) + self.candidate_weight / (1 + rank)
        for tag, s in scores.items():
            total.setdefault(tag, s)
        return sorted(total, key=lambda t: (-total[t], t))[:k]

    def draft_post(self, embedding: np.ndarray) -> str:
        """A short caption in the user's words ("" when no captions were imported)."""
        if self.draft is None:
            return ""
        tokens = self.draft.decode(embedding, self.beam_size, unique=False)[0]
        text = " ".join(tokens)
        return text[:1].upper() + text[1:] + "." if text else ""


def train_on_posts(
    posts: Sequence[HistoryPost],
    idf: Callable[[str], float],
    settings: TrainSettings | None = None,
    progress: bool = False,
    context: list[str] | None = None,
) -> Personalizer:
    """Fit the heads on ``posts``; ``context`` defaults to their TF-IDF profile."""
    settings = settings or TrainSettings()
    start = time.monotonic()
    if context is None:
        context = user_context(posts, idf, CSMNConfig(vocab_size=0).context_len)
    tags = fit_tag_head(posts, context, settings, "personalizer: hashtags" if progress else None)
    draft = (
        fit_draft_head(posts, context, settings, "personalizer: post text" if progress else None)
        if settings.draft
        else None
    )
    summary = (
        f"personalizer: {len(posts)} posts, {len(tags.vocab) - len(SPECIALS)} tags, "
        f"context {len(tags.context)} terms, trained in {time.monotonic() - start:.0f} s"
    )
    return Personalizer(tags, draft, summary)


# -- with the index: what the CLI and the scan call ----------------------------------------------


def history_from_index_post(post: IndexPost) -> HistoryPost | None:
    """One imported post as training data (embedding = mean over its photos); None without any."""
    vectors = [
        np.frombuffer(m.embedding, dtype="<f2").astype(np.float32)
        for m in post.media
        if m.kind == "photo" and m.embedding
    ]
    if not vectors:
        return None
    return HistoryPost(post.taken_at or "", post.caption, tuple(post.hashtags), np.mean(vectors, 0))


def history_from_index(index: Index) -> list[HistoryPost]:
    """Imported posts that have at least one encoded photo."""
    return [h for p in index.posts() if (h := history_from_index_post(p)) is not None]


def index_context(index: Index, size: int) -> list[str]:
    """The import's ``user_profile`` terms, '#' dropped (hashtag and word share one vocabulary)."""
    from photobatch.instagram.export import harrison_idf, user_profile
    from photobatch.models.prior import default_prior

    terms = user_profile(index, harrison_idf(default_prior()), top_d=size)
    return list(dict.fromkeys(t.removeprefix("#") for t, _ in terms))


def train_personalizer(
    index: Index, path: Path, settings: TrainSettings | None = None, progress: bool = True
) -> str:
    """``photobatch train personalizer``: fit on the imported posts, save, one-line summary.

    With no imported post (or none with an encoded photo) nothing is written and any old head is
    removed, so scans fall back to the non-personalized pipeline.
    """
    from photobatch.instagram.export import harrison_idf
    from photobatch.models.prior import default_prior

    history = history_from_index(index)
    if not history:
        path.unlink(missing_ok=True)
        return f"personalizer: {NO_POSTS}"
    context = index_context(index, CSMNConfig(vocab_size=0).context_len)
    personalizer = train_on_posts(
        history, harrison_idf(default_prior()), settings, progress, context=context
    )
    personalizer.save(path)
    return f"{personalizer.summary} -> {path}"


def load_personalizer(path: Path) -> Personalizer | None:
    """The trained head stored with the index, or None (scans stay non-personalized)."""
    return Personalizer.load(path) if path.is_file() else None


def personalize(
    personalizer: Personalizer | None,
    embedding: np.ndarray | bytes | None,
    candidates: Sequence[str],
    k: int,
) -> tuple[list[str], str | None]:
    """Scan-time hook: (hashtags best first, post draft); the pipeline's tags without a head."""
    if personalizer is None or embedding is None:
        return list(candidates)[:k], None
    if isinstance(embedding, bytes):
        embedding = np.frombuffer(embedding, dtype="<f2").astype(np.float32)
    return personalizer.rerank(embedding, candidates, k), personalizer.draft_post(embedding) or None


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
