"""An Instagram hashtag prior learned from the HARRISON hashtag lists.

Captions say what is *in* a photo ("dog", "grass"); people post what the photo is *about* on
Instagram (#dogsofinstagram, #puppy, #petstagram). This module learns that bridge from HARRISON
(Park, Li, Kim 2016: 57,383 real Instagram posts, 997 distinct hashtags), InstaHash-style: each
post is a context, hashtags that share posts get similar vectors.

Design:

* Vocabulary: every hashtag in ``tag_list.txt``, ordered by document frequency (ties by name), so
  the order is deterministic and index 0 is the most used tag.
* Document frequencies: the number of posts a tag appears in (a repeated tag counts once). They are
  the background for :meth:`HashtagPrior.idf` (and, through :func:`harrison_idf`, for the
  user profile's TF-IDF).
* Co-occurrence: ``C[i, j]`` = posts holding both tags (``i != j``).
* PPMI with context-distribution smoothing (Levy, Goldberg, Dagan 2015): the context marginal is
  raised to ``alpha = 0.75`` before normalising, which stops rare tags from getting inflated PMI
  with everything they touch once.
* Truncated SVD of the PPMI matrix, ``W = U_d * sqrt(S_d)`` (symmetric weighting of the singular
  values, again as Levy et al. recommend), rows L2-normalised so that a dot product is a cosine.
  Each column's sign is fixed (largest-magnitude entry positive) so a rebuild gives the same file.
* ``dim = 128``, ``alpha = 0.75``, chosen on HARRISON itself: 5,000 held-out posts, hide one tag,
  rank the vocabulary by cosine to the sum of the post's other tags' vectors. Recall@10 was
  0.17 / 0.24 / 0.29 / 0.32 / 0.33 / 0.33 for d = 16 / 32 / 64 / 128 / 256 / 600; alpha = 1.0 was
  within 0.01 everywhere. 128 keeps ~95% of the best recall, while at 256+ the neighbour lists of
  less common tags (#bike, #car) fill up with single-post noise (#necklace, #kuwait), which is what
  an expansion shows the user. 997 x 128 float32 is about 0.5 MB.

Files: ``<name>.npz`` holds the arrays (``vectors`` float32, ``df`` int64) and ``<name>.json`` the
vocabulary and build parameters; neither needs pickle to load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from photobatch.core.errors import UserError
from photobatch.models.base import Model
from photobatch.weights import shipped

PRIOR_FILE = "hashtag_prior.npz"
DIM = 128
ALPHA = 0.75
MAX_TAGS_PER_POST = 10  # HARRISON posts carry 1 to 10 tags


@dataclass(frozen=True, eq=False)
class HashtagPrior:
    """Vocabulary, document frequencies and unit-length co-occurrence vectors of hashtags."""

    vocab: tuple[str, ...]
    df: np.ndarray  # (V,) int64: posts each tag appears in
    vectors: np.ndarray  # (V, d) float32, rows L2-normalised
    n_docs: int
    params: dict[str, object] = field(default_factory=dict)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.vocab)})

    def __contains__(self, tag: object) -> bool:
        return tag in self._index

    def __len__(self) -> int:
        return len(self.vocab)

    def index_of(self, tag: str) -> int | None:
        """Row of ``tag`` in ``vocab``, ``df`` and ``vectors`` (None when unknown)."""
        return self._index.get(tag)

    def doc_freq(self, tag: str) -> int:
        """Posts that used ``tag`` (0 when unknown)."""
        i = self._index.get(tag)
        return 0 if i is None else int(self.df[i])

    def idf(self, word: str) -> float:
        """Smoothed inverse document frequency, ``ln((N + 1) / (df + 1)) + 1``.

        Smoothed so an unknown word gets the largest finite value (rarer than anything seen)
        and the most common tag still keeps a positive weight.
        """
        return math.log((self.n_docs + 1) / (self.doc_freq(word) + 1)) + 1.0

    def popularity(self, tag: str) -> float:
        """``log(1 + df) / log(1 + max df)`` in [0, 1]: log-damped so #love does not swamp all."""
        return math.log1p(self.doc_freq(tag)) / math.log1p(int(self.df.max()))

    def related(self, tag: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest tags by cosine, best first (ties by name); [] for an unknown tag."""
        i = self._index.get(tag)
        if i is None or k <= 0:
            return []
        sims = self.vectors @ self.vectors[i]
        order = sorted((j for j in range(len(self.vocab)) if j != i), key=lambda j: (-sims[j], j))
        return [(self.vocab[j], float(sims[j])) for j in order[:k]]

    def save(self, path: Path) -> None:
        """Write ``path`` with suffix .npz (arrays) and .json (vocabulary, parameters)."""
        path = Path(path)
        np.savez_compressed(path.with_suffix(".npz"), vectors=self.vectors, df=self.df)
        meta = {"vocab": list(self.vocab), "n_docs": self.n_docs, "params": self.params}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> HashtagPrior:
        """Read a prior written by :meth:`save` (no pickle is ever allowed)."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            vectors = arrays["vectors"].astype(np.float32)
            df = arrays["df"].astype(np.int64)
        vocab = tuple(meta["vocab"])
        if not len(vocab) == len(df) == len(vectors):
            raise ValueError(f"{path}: vocabulary, df and vectors disagree in length")
        return cls(vocab, df, vectors, int(meta["n_docs"]), dict(meta.get("params", {})))


def read_posts(harrison_dir: Path) -> list[list[str]]:
    """Each post's distinct hashtags in first-seen order, from HARRISON's ``tag_list.txt``."""
    lines = (Path(harrison_dir) / "tag_list.txt").read_text(encoding="utf-8").splitlines()
    return [list(dict.fromkeys(line.split())) for line in lines]


def _ppmi(counts: np.ndarray, alpha: float) -> np.ndarray:
    """Positive PMI of a co-occurrence count matrix with context-distribution smoothing."""
    total = counts.sum()
    p_word = counts.sum(axis=1) / total
    ctx = counts.sum(axis=0) ** alpha
    p_ctx = ctx / ctx.sum()
    joint = counts / total
    with np.errstate(divide="ignore"):
        pmi = np.log(joint) - np.log(p_word)[:, None] - np.log(p_ctx)[None, :]
    return np.maximum(pmi, 0.0)


def _embed(ppmi: np.ndarray, dim: int) -> np.ndarray:
    """Rows of ``U_d sqrt(S_d)``, sign-fixed per column and L2-normalised."""
    u, s, _ = np.linalg.svd(ppmi)
    w = u[:, :dim] * np.sqrt(s[:dim])
    signs = np.sign(w[np.abs(w).argmax(axis=0), np.arange(w.shape[1])])
    w *= np.where(signs == 0, 1.0, signs)
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return (w / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def build_prior(harrison_dir: Path, dim: int = DIM, alpha: float = ALPHA) -> HashtagPrior:
    """Build the prior from a HARRISON folder (needs ``tag_list.txt``); takes about a second."""
    posts = read_posts(harrison_dir)
    counts_by_tag: dict[str, int] = {}
    for post in posts:
        for tag in post:
            counts_by_tag[tag] = counts_by_tag.get(tag, 0) + 1
    vocab = tuple(sorted(counts_by_tag, key=lambda t: (-counts_by_tag[t], t)))
    index = {t: i for i, t in enumerate(vocab)}
    n = len(vocab)

    width = max(MAX_TAGS_PER_POST, *(len(p) for p in posts))
    ids = np.full((len(posts), width), -1, dtype=np.int64)
    for row, post in enumerate(posts):
        ids[row, : len(post)] = [index[t] for t in post]
    left, right = ids[:, :, None], ids[:, None, :]
    pairs = (left >= 0) & (right >= 0) & (left != right)
    flat = (np.broadcast_to(left, pairs.shape) * n + np.broadcast_to(right, pairs.shape))[pairs]
    cooc = np.bincount(flat, minlength=n * n).reshape(n, n).astype(np.float64)

    df = np.array([counts_by_tag[t] for t in vocab], dtype=np.int64)
    vectors = _embed(_ppmi(cooc, alpha), min(dim, n))
    params = {
        "source": "HARRISON (Park, Li, Kim 2016) tag_list.txt",
        "method": "PPMI (context smoothing alpha) + truncated SVD, U*sqrt(S), L2-normalised",
        "dim": int(vectors.shape[1]),
        "alpha": alpha,
    }
    return HashtagPrior(vocab, df, vectors, len(posts), params)


def main_build(harrison_dir: Path, out: Path) -> str:
    """Build the prior from ``harrison_dir``, save it to ``out`` (+ .json); a one-line summary."""
    prior = build_prior(Path(harrison_dir))
    out = Path(out).with_suffix(".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    prior.save(out)
    return (
        f"hashtag prior: {len(prior)} tags from {prior.n_docs} posts, "
        f"dim {prior.vectors.shape[1]} -> {out} (+ {out.with_suffix('.json').name})"
    )


class PriorError(UserError, ValueError):
    """A hashtag prior file that cannot be read; the message names the file and why."""


class PriorFile(Model):
    """A prior on disk as a ``Model``: read on first use, and again once its files change."""

    name = "prior"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._prior: HashtagPrior | None = None

    def files(self) -> tuple[Path, ...]:
        return (self.path.with_suffix(".npz"), self.path.with_suffix(".json"))

    def _load(self) -> None:
        try:
            self._prior = HashtagPrior.load(self.path)
        except (OSError, KeyError, ValueError) as exc:
            raise PriorError(
                f"{self.path}: cannot read this hashtag prior ({type(exc).__name__}: {exc}): "
                "reinstall photobatch, or rebuild it with 'photobatch build-prior'"
            ) from exc

    @property
    def prior(self) -> HashtagPrior:
        self.load()
        assert self._prior is not None
        return self._prior


@cache
def prior_file(path: Path) -> PriorFile:
    """The one ``PriorFile`` of this process for ``path``."""
    return PriorFile(path)


def default_prior() -> HashtagPrior:
    """The prior shipped in ``models/`` (``photobatch.weights``): read once, and again when the
    file changes, as the model contract (``models.base``) says of every model."""
    return prior_file(shipped(PRIOR_FILE)).prior


def harrison_idf(prior: HashtagPrior) -> Callable[[str], float]:
    """Background IDF from the HARRISON hashtag prior, with unknown words capped.

    HARRISON knows only its ~1,000 popular hashtags, so a word it lacks is "not a popular tag",
    not "rarer than anything ever seen": it gets the IDF of the rarest tag HARRISON has (a
    document frequency of one post). That is the maximum IDF, so a user's own vocabulary (a
    dog's name, a niche hobby) ranks with the most distinctive known tags and how often the user
    uses it decides, while a known but common tag (#love) stays low.
    """
    cap = max(prior.idf(tag) for tag in prior.vocab)

    def idf(word: str) -> float:
        return prior.idf(word) if word in prior else cap

    return idf
