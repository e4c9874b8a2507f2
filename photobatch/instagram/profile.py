"""The user's profile: the words and hashtags most typical of their imported posts (TF-IDF)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from photobatch.core.text import caption_terms

if TYPE_CHECKING:
    from photobatch.library.index import Index


def user_profile(
    index: Index, idf: Callable[[str], float] | None = None, top_d: int = 60
) -> list[tuple[str, float]]:
    """The user's ``top_d`` most distinctive words and ``#hashtags``, best first.

    TF-IDF over the imported posts: TF is the share of the user's posts that use a term (a word
    repeated inside one caption counts once), IDF comes from ``idf`` (default: the shipped
    HARRISON prior through :func:`harrison_idf`; a hashtag is looked up without its '#'), since
    one user's history alone gives no document frequencies. Ties are broken by the term.
    """
    posts = index.posts()
    if not posts:
        return []
    if idf is None:
        from photobatch.models.prior import default_prior, harrison_idf

        idf = harrison_idf(default_prior())
    counts: Counter[str] = Counter()
    for post in posts:
        counts.update(caption_terms(post.caption))
    scores = [(term, n / len(posts) * idf(term.removeprefix("#"))) for term, n in counts.items()]
    scores.sort(key=lambda s: (-s[1], s[0]))
    return scores[:top_d]
