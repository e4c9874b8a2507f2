"""A CSMN head fitted on one user's posts: the benchmark's measurement of what it adds.

The CSMN (``photobatch.models.nn.csmn``) generates a user's hashtags from the photo, their profile
and the tags so far. Until issue 23 the shipped ranking used its probabilities as a fourth score;
measured on users whose photos no model trained on, it added nothing the vote and the
co-occurrence did not already give (``models/PERSONALIZER.md``), so ``train personalizer`` no
longer fits it. ``photobatch evaluate personalizer --benchmark`` still does, to show the head
generating alone and as a score beside the shipped ones.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from photobatch.core.text import tfidf_profile
from photobatch.models.nn.csmn import BOS, CSMN, EOS, PAD, SPECIALS, UNK, CSMNConfig


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs. 40 epochs of batch 32 at lr 3e-3 fit 800 posts in about a minute on a
    2-core CPU and converge on the benchmark users (loss flat after ~30 epochs)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0


class Vocab:
    """Token <-> id with the CSMN special tokens first."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = [*SPECIALS, *(t for t in tokens if t not in SPECIALS)]
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.ids.get(t, UNK) for t in tokens]


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


@dataclass
class Head:
    """One trained CSMN with its vocabulary and the user context it reads."""

    model: CSMN
    vocab: Vocab
    context: list[str]
    beam_size: int = 3

    def context_ids(self) -> torch.Tensor:
        ids = [i for i in self.vocab.encode(self.context) if i != UNK]
        ids = ids[: self.model.config.context_len]
        return torch.tensor(ids + [PAD] * (self.model.config.context_len - len(ids)))

    def decode(self, embedding: np.ndarray) -> tuple[list[str], list[torch.Tensor]]:
        self.model.eval()
        image = torch.as_tensor(np.asarray(embedding, dtype=np.float32))
        with one_thread():
            ids, dists = self.model.beam(image, self.context_ids(), self.beam_size, unique=True)
        return [self.vocab.tokens[i] for i in ids], dists

    def generate(self, embedding: np.ndarray) -> list[str]:
        """The head's own hashtags for a photo (beam search, no duplicates), in order."""
        return self.decode(embedding)[0]

    def tag_scores(self, embedding: np.ndarray) -> dict[str, float]:
        """For every vocabulary tag, 1 - prod_t (1 - p_t(tag)) along the generated tags."""
        _, dists = self.decode(embedding)
        miss = torch.ones(len(self.vocab))
        for p in dists:
            miss = miss * (1 - p)
        hit = (1 - miss).tolist()
        tokens = self.vocab.tokens
        return {tokens[i]: hit[i] for i in range(len(SPECIALS), len(tokens))}


def user_context(
    posts: Iterable[tuple[str, Sequence[str]]], idf: Callable[[str], float], size: int
) -> list[str]:
    """The head's user context: the top-``size`` terms of the (caption, hashtags) posts'
    TF-IDF profile (the one ``photobatch status`` shows), '#' dropped, each once."""
    terms = tfidf_profile(posts, idf, size)
    return list(dict.fromkeys(t.removeprefix("#") for t, _ in terms))


def tag_order(tag_lists: Sequence[Sequence[str]]) -> Callable[[Sequence[str]], list[str]]:
    """Target order for a post's tags: the user's most frequent first (ties by name).

    CSMN generates a sequence but hashtags are a set; a fixed frequent-first order makes the
    first steps the confident ones, which is what greedy and beam decoding reward.
    """
    freq = Counter(t for tags in tag_lists for t in set(tags))
    return lambda tags: sorted(set(tags), key=lambda t: (-freq[t], t))


def fit_csmn_head(
    posts: Sequence[tuple[str, Sequence[str], np.ndarray]],
    idf: Callable[[str], float],
    settings: TrainSettings | None = None,
    progress: str | None = None,
) -> Head:
    """Teacher-forced training of one CSMN on (caption, hashtags, embedding) posts; deterministic
    under ``settings.seed``."""
    settings = settings or TrainSettings()
    config = CSMNConfig(vocab_size=0)
    context = user_context(((c, tags) for c, tags, _ in posts), idf, config.context_len)
    order = tag_order([tags for _, tags, _ in posts])
    examples = [(e, order(tags)) for _, tags, e in posts if tags]
    vocab = Vocab(sorted({t for _, tags in examples for t in tags} | set(context)))
    with one_thread():
        return _fit(
            examples, vocab, context, replace(config, vocab_size=len(vocab)), settings, progress
        )


def _fit(
    examples: Sequence[tuple[np.ndarray, list[str]]],
    vocab: Vocab,
    context: list[str],
    config: CSMNConfig,
    settings: TrainSettings,
    progress: str | None,
) -> Head:
    torch.manual_seed(settings.seed)
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
