"""Training the personal heads on the user's imported posts (``photobatch train personalizer``).

Two CSMN heads are fitted with teacher forcing: one on hashtags, one on post text for the draft.
The result is a ``photobatch.models.personalizer.Personalizer`` saved with the index; a scan only
loads it and never imports this module.
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

from photobatch.core.text import post_words, tfidf_profile
from photobatch.models.nn.csmn import BOS, CSMN, EOS, PAD, SPECIALS, CSMNConfig
from photobatch.models.personalizer import NO_POSTS, Head, Personalizer, Vocab, one_thread

if TYPE_CHECKING:
    from photobatch.core.records import Post as IndexPost
    from photobatch.library.index import Index


# Fewest tagged posts (with an encoded photo) worth training on. A habit is a tag the user
# repeats; below 10 posts no tag is seen often enough to tell a habit from a one-off, and the head
# only memorizes those few photos' tags and puts them on every photo.
MIN_TAGGED_POSTS = 10


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
    order = tag_order(posts)
    examples = [(p.embedding, order(p.hashtags)) for p in posts if p.hashtags]
    vocab = sorted({t for _, tags in examples for t in tags} | set(context))
    return fit_head(examples, vocab, context, CSMNConfig(vocab_size=0), settings, progress)


def fit_draft_head(
    posts: Sequence[HistoryPost], context: list[str], settings: TrainSettings, progress: str | None
) -> Head | None:
    """Post-text head (CSMN's post generation): the user's words, rare ones as <unk>."""
    examples = [(p.embedding, post_words(p.caption)) for p in posts if post_words(p.caption)]
    if not examples:
        return None
    counts = Counter(w for _, ws in examples for w in ws)
    vocab = sorted({w for w, c in counts.items() if c >= 2} | set(context))
    config = CSMNConfig(vocab_size=0, max_len=16)
    return fit_head(examples, vocab, context, config, settings, progress)


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
        context = user_context(
            ((p.caption, p.hashtags) for p in posts), idf, CSMNConfig(vocab_size=0).context_len
        )
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
