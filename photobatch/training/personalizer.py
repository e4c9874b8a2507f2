"""Building the personal ranking from the user's imported posts (``photobatch train personalizer``).

The ranking's weights are fixed (``photobatch.models.personalizer.PHOTO_WEIGHTS``); what is
personal is the memory of every imported post: its tags, its text, what it showed and, when the
export had its photo, the photo's vector. An export without media still gives a memory: its
captions and hashtags rank by text habits. The result is a
``photobatch.models.personalizer.Personalizer`` saved with the index; a scan only loads it and
never imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photobatch.core.text import MAX_POST_HASHTAGS, caption_terms, draft_text
from photobatch.models.personal_memory import Memory
from photobatch.models.personalizer import (
    MIN_PHOTOS,
    MIN_TAGGED_POSTS,
    NO_POSTS,
    Personalizer,
)

if TYPE_CHECKING:
    from photobatch.core.records import Post as IndexPost
    from photobatch.library.index import Index


@dataclass(frozen=True)
class HistoryPost:
    """One of the user's past posts as the ranking remembers it (hashtags without '#')."""

    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    embedding: np.ndarray | None = None  # (1280,) pooled encoder vector; None without a photo
    candidates: tuple[str, ...] = ()  # the non-personalized pipeline's tags of its photo


def shown_by(post: HistoryPost) -> tuple[str, ...]:
    """What a past post showed: the scan's candidates of its photo; without them, the words of
    its caption that the hashtag prior knows (a candidate can only ever be such a word)."""
    if post.candidates:
        return post.candidates
    from photobatch.models.prior import default_prior

    prior = default_prior()
    words = (t for t in caption_terms(post.caption) if not t.startswith("#"))
    return tuple(sorted(w for w in words if w in prior))


def memory_of(posts: Sequence[HistoryPost]) -> Memory:
    """The ranking's memory of ``posts``."""
    return Memory.build(
        [p.hashtags for p in posts],
        [draft_text(p.caption) for p in posts],
        [shown_by(p) for p in posts],
        [p.embedding for p in posts],
    )


def train_on_posts(posts: Sequence[HistoryPost]) -> Personalizer:
    """The ranking of a user with these past posts."""
    start = time.monotonic()
    posts = sorted(posts, key=lambda p: p.taken_at)
    memory = memory_of(posts)
    photos = len(memory.bank)
    how = "" if photos >= MIN_PHOTOS else f"; under {MIN_PHOTOS} photos: ranked by text habits"
    summary = (
        f"personalizer: {len(posts)} posts ({photos} with photos{how}), "
        f"{len(memory.used)} tags, built in {time.monotonic() - start:.1f} s"
    )
    return Personalizer(memory, summary)


def prf(pred: Sequence[str], truth: Sequence[str], k: int | None) -> tuple[float, float, float]:
    """Precision, recall, F1 of one post; ``k`` None compares the sets (CSMN's set F1)."""
    top = list(pred)[:k] if k is not None else list(pred)
    hits = len(set(top) & set(truth))
    p = hits / (k if k is not None else max(len(top), 1))
    r = hits / max(len(truth), 1)
    return p, r, (2 * p * r / (p + r) if hits else 0.0)


def history_from_index_post(index: Index, post: IndexPost) -> HistoryPost:
    """One imported post as the ranking remembers it: the mean vector of its encoded photos (None
    without any) and the candidates of its first photo that has some."""
    vectors = [
        np.frombuffer(m.embedding, dtype="<f2").astype(np.float32)
        for m in post.media
        if m.kind == "photo" and m.embedding
    ]
    return HistoryPost(
        post.taken_at or "",
        post.caption,
        tuple(post.hashtags[:MAX_POST_HASHTAGS]),  # an import of an earlier photobatch kept all
        np.mean(vectors, 0) if vectors else None,
        tuple(stored_pipeline_tags(index, post)),
    )


def stored_pipeline_tags(index: Index, post: IndexPost) -> list[str]:
    """The non-personalized hashtags of the post's first photo that has some ([] if none): those
    the import stored, else those a scan stored (its ``candidates``, since its ``hashtags`` may
    already be ranked by a personal head)."""
    for media in post.media:
        if media.kind != "photo" or not media.sha256:
            continue
        if media.candidates:
            return list(media.candidates)
        analysis = index.analysis(media.sha256)
        if analysis and analysis.candidates:
            return list(analysis.candidates)
    return []


def history_from_index(index: Index) -> list[HistoryPost]:
    """Every imported post, with or without its photos."""
    return [history_from_index_post(index, p) for p in index.posts()]


def train_personalizer(index: Index, path: Path) -> str:
    """``photobatch train personalizer``: build the ranking from the imported posts, save it,
    and say so in one line.

    With no imported post, or fewer than ``MIN_TAGGED_POSTS`` with hashtags, nothing is written
    and any old head is removed, so scans fall back to the non-personalized pipeline.
    """
    history = history_from_index(index)
    tagged = sum(bool(h.hashtags) for h in history)
    if tagged < MIN_TAGGED_POSTS:
        path.unlink(missing_ok=True)
        if not history:
            return f"personalizer: {NO_POSTS}"
        return (
            f"personalizer: nothing trained: {tagged} of {len(history)} imported posts have "
            f"hashtags, and learning your habits takes at least {MIN_TAGGED_POSTS} (a habit is a "
            "tag you repeat); hashtags stay generic until you import more"
        )
    personalizer = train_on_posts(history)
    personalizer.save(path)
    return f"{personalizer.summary} -> {path}"
