"""Training the personal ranking on the user's imported posts (``photobatch train personalizer``).

The CSMN head is fitted with teacher forcing on every post, and the memory holds every post (the
ranking's weights are fixed: ``photobatch.models.personalizer.WEIGHTS``). The result is a
``photobatch.models.personalizer.Personalizer`` saved with the index; a scan only loads it and
never imports this module.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from photobatch.core.text import MAX_POST_HASHTAGS, draft_text, tfidf_profile
from photobatch.models.nn.csmn import BOS, CSMN, EOS, PAD, SPECIALS, CSMNConfig
from photobatch.models.personal_memory import Memory
from photobatch.models.personalizer import (
    MIN_TAGGED_POSTS,
    NO_POSTS,
    Head,
    Personalizer,
    Vocab,
    one_thread,
)

if TYPE_CHECKING:
    from photobatch.core.records import Post as IndexPost
    from photobatch.library.index import Index


# Tags the head can output: far more than one user uses (a few hundred to a few thousand), and
# a bound on its size, which grows with the vocabulary.
MAX_VOCAB = 10_000


@dataclass(frozen=True)
class HistoryPost:
    """One of the user's past posts as the head learns from it (hashtags without '#')."""

    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    embedding: np.ndarray  # (1280,) pooled encoder vector
    candidates: tuple[str, ...] = ()  # the non-personalized pipeline's tags, best first


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. 40 epochs of batch 32 at lr 3e-3 fit 800 posts in about a minute on a
    2-core CPU and converge on the benchmark users (loss flat after ~30 epochs)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0


def user_context(
    posts: Iterable[tuple[str, Sequence[str]]], idf: Callable[[str], float], size: int
) -> list[str]:
    """The head's user context: the top-``size`` terms of the (caption, hashtags) posts'
    TF-IDF profile, '#' dropped (hashtags and words share one vocabulary), each once.

    The profile ``photobatch status`` shows; training and every evaluation use this one function,
    so the benchmark measures the context that ships.
    """
    terms = tfidf_profile(posts, idf, size)
    return list(dict.fromkeys(t.removeprefix("#") for t, _ in terms))


def tag_order(posts: Sequence[HistoryPost]) -> Callable[[Sequence[str]], list[str]]:
    """Target order for a post's tags: the user's most frequent first (ties by name).

    CSMN generates a sequence but hashtags are a set; a fixed frequent-first order makes the
    first steps the confident ones, which is what greedy and beam decoding reward.
    """
    freq = Counter(t for p in posts for t in set(p.hashtags))
    return lambda tags: sorted(set(tags), key=lambda t: (-freq[t], t))


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
    head = Head(model, vocab, context)
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
    # As the scan's: a bar only on a terminal, never in a log (cron, a pipe, a file).
    bar = tqdm(
        total=steps,
        desc=progress,
        disable=progress is None or not sys.stderr.isatty(),
        leave=False,
        file=sys.stderr,
    )
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
    """The CSMN head on ``posts``; its vocabulary the user's ``MAX_VOCAB`` most used tags (and
    the context's terms), so its size stays bounded however many tags the posts hold."""
    order = tag_order(posts)
    examples = [(p.embedding, order(p.hashtags)) for p in posts if p.hashtags]
    used = Counter(t for _, tags in examples for t in tags)
    vocab = sorted({t for t, _ in used.most_common(MAX_VOCAB)} | set(context))
    return fit_head(examples, vocab, context, CSMNConfig(vocab_size=0), settings, progress)


def train_on_posts(
    posts: Sequence[HistoryPost],
    idf: Callable[[str], float],
    settings: TrainSettings | None = None,
    progress: bool = False,
    context: list[str] | None = None,
) -> Personalizer:
    """Fit the ranking on ``posts``; ``context`` defaults to their TF-IDF profile."""
    settings = settings or TrainSettings()
    start = time.monotonic()
    posts = sorted(posts, key=lambda p: p.taken_at)
    if context is None:
        context = user_context(
            ((p.caption, p.hashtags) for p in posts), idf, CSMNConfig(vocab_size=0).context_len
        )
    head = fit_tag_head(posts, context, settings, "personalizer: hashtags" if progress else None)
    summary = (
        f"personalizer: {len(posts)} posts, {len(head.vocab) - len(SPECIALS)} tags, "
        f"context {len(head.context)} terms, trained in {time.monotonic() - start:.0f} s"
    )
    return Personalizer(head, memory_of(posts), summary)


def memory_of(posts: Sequence[HistoryPost]) -> Memory:
    """The ranking's memory of ``posts``; a photo no scan has seen shows what its tags say."""
    return Memory.build(
        [p.embedding for p in posts],
        [p.hashtags for p in posts],
        [draft_text(p.caption) for p in posts],
        [p.candidates or p.hashtags for p in posts],
    )


def prf(pred: Sequence[str], truth: Sequence[str], k: int | None) -> tuple[float, float, float]:
    """Precision, recall, F1 of one post; ``k`` None compares the sets (CSMN's set F1)."""
    top = list(pred)[:k] if k is not None else list(pred)
    hits = len(set(top) & set(truth))
    p = hits / (k if k is not None else max(len(top), 1))
    r = hits / max(len(truth), 1)
    return p, r, (2 * p * r / (p + r) if hits else 0.0)


def history_from_index_post(index: Index, post: IndexPost) -> HistoryPost | None:
    """One imported post as training data (embedding = mean over its photos, candidates those a
    scan stored for its first photo); None without an encoded photo."""
    vectors = [
        np.frombuffer(m.embedding, dtype="<f2").astype(np.float32)
        for m in post.media
        if m.kind == "photo" and m.embedding
    ]
    if not vectors:
        return None
    return HistoryPost(
        post.taken_at or "",
        post.caption,
        tuple(post.hashtags[:MAX_POST_HASHTAGS]),  # an import of an earlier photobatch kept all
        np.mean(vectors, 0),
        tuple(stored_pipeline_tags(index, post)),
    )


def stored_pipeline_tags(index: Index, post: IndexPost) -> list[str]:
    """The non-personalized hashtags a scan stored for the post's first photo ([] if none): its
    ``candidates``, since its ``hashtags`` may already be ranked by a personal head."""
    for media in post.media:
        if media.kind == "photo" and media.sha256:
            analysis = index.analysis(media.sha256)
            return list(analysis.candidates) if analysis else []
    return []


def history_from_index(index: Index) -> list[HistoryPost]:
    """Imported posts that have at least one encoded photo."""
    return [h for p in index.posts() if (h := history_from_index_post(index, p)) is not None]


def train_personalizer(
    index: Index, path: Path, settings: TrainSettings | None = None, progress: bool = True
) -> str:
    """``photobatch train personalizer``: fit on the imported posts, save, one-line summary.

    With no imported post (or none with an encoded photo), or fewer than ``MIN_TAGGED_POSTS``
    with hashtags, nothing is written and any old head is removed, so scans fall back to the
    non-personalized pipeline.
    """
    from photobatch.models.prior import default_prior, harrison_idf

    history = history_from_index(index)
    tagged = sum(bool(h.hashtags) for h in history)
    if tagged < MIN_TAGGED_POSTS:
        path.unlink(missing_ok=True)
        if not history:
            return f"personalizer: {NO_POSTS}"
        return (
            f"personalizer: nothing trained: {tagged} imported posts have hashtags and a photo, "
            f"and learning your habits takes at least {MIN_TAGGED_POSTS} (a habit is a tag you "
            "repeat); hashtags stay generic until you import more"
        )
    idf = harrison_idf(default_prior())
    # The whole import's profile, posts without an encoded photo included, as ``status`` shows it.
    everything = ((p.caption, p.hashtags) for p in index.posts())
    context = user_context(everything, idf, CSMNConfig(vocab_size=0).context_len)
    personalizer = train_on_posts(history, idf, settings, progress, context=context)
    personalizer.save(path)
    return f"{personalizer.summary} -> {path}"
