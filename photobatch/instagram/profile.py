"""The user's profile: the words and hashtags most typical of their imported posts (TF-IDF)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from photobatch.core.text import tfidf_profile

if TYPE_CHECKING:
    from photobatch.library.index import Index


def user_profile(
    index: Index, idf: Callable[[str], float] | None = None, top_d: int = 60
) -> list[tuple[str, float]]:
    """The ``top_d`` most distinctive words and ``#hashtags`` of the imported posts, best first.

    :func:`~photobatch.core.text.tfidf_profile` of the posts, against ``idf`` (default: the
    shipped HARRISON prior through :func:`harrison_idf`).
    """
    posts = index.posts()
    if not posts:
        return []  # without loading the prior: ``status`` of a library with no import
    if idf is None:
        from photobatch.models.prior import default_prior, harrison_idf

        idf = harrison_idf(default_prior())
    return tfidf_profile(((p.caption, p.hashtags) for p in posts), idf, top_d)
