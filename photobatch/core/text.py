"""How photobatch reads words out of captions: tokens, hashtags, profile terms, stopwords.

Three readings, for three jobs. :func:`tokenize` keeps every token in order, lower-case ASCII
letters and digits, because sequence models generate them: the captioner's vocabulary and its
metrics. :func:`draft_text` keeps a post's text as the user wrote it, emoji included, for the
personal post drafts. :func:`caption_terms` is a set of
distinctive terms of any script (stopwords, numbers, @mentions and URLs dropped), because the
user's profile (:func:`tfidf_profile`) ranks them. They are used by the Instagram import, the
profile, training and every evaluation alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

_TOKEN = re.compile(r"[a-z0-9]+")


_HASHTAG_OR_MENTION = re.compile(r"[#@]\S+")


_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


_MENTION = re.compile(r"@[\w.]+")


_HASH_SIGNS = "#\uff03"  # '#' and the full-width U+FF03 that CJK keyboards type


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters and digits; punctuation and hyphens split or vanish."""
    return _TOKEN.findall(text.lower())


def draft_text(caption: str) -> str:
    """A post's text as a draft reuses it: hashtags and mentions removed, emoji and
    punctuation kept, spaces collapsed."""
    return " ".join(_HASHTAG_OR_MENTION.sub(" ", caption).split())


def _is_word_char(ch: str) -> bool:
    """Letters, marks, digits and underscore of any script (``\\w`` misses combining marks)."""
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def _runs(text: str) -> Iterator[tuple[str, str]]:
    """(character before, run) for each maximal run of word characters in ``text``."""
    start = None
    for i, ch in enumerate(text + " "):
        if _is_word_char(ch):
            if start is None:
                start = i
        elif start is not None:
            yield (text[start - 1] if start else ""), text[start:i]
            start = None


def _normalise_tag(tag: str) -> str:
    return unicodedata.normalize("NFC", tag.casefold())


# Instagram refuses a post with more hashtags than this: an imported post with more is not one
# Instagram published, and past it the personal head's pairs of tags would grow with its square.
MAX_POST_HASHTAGS = 30


def format_hashtag(tag: str) -> str:
    """``dog`` -> ``#dog`` (the stored form has no ``#``)."""
    return tag if tag.startswith("#") else f"#{tag}"


def format_hashtags(tags: Iterable[str]) -> str:
    """Space-separated ``#tags`` ready to paste into a post."""
    return " ".join(format_hashtag(t) for t in tags)


def user_hashtags(text: str) -> list[str]:
    """Hashtags a person typed (``#Golden-Hour sunset, #dog``), stored as every other tag is:
    casefolded, without '#', one per word (a word's other characters dropped), each once;
    all-digit words are not tags."""
    tags = []
    for word in re.split(r"[\s,;]+", text):
        tag = _normalise_tag("".join(ch for ch in word if _is_word_char(ch)))
        if tag and not tag.isdigit() and tag not in tags:
            tags.append(tag)
    return tags


def extract_hashtags(caption: str) -> list[str]:
    """The caption's hashtags, casefolded, without '#', in order, each once.

    A tag is '#' and a run of word characters of any script, so ``#a#b`` is two tags and
    ``#sunset🌅!`` is ``sunset``. All-digit runs (``#1``) are not tags, as on Instagram, and a '#'
    inside a URL is not one either.
    """
    text = _URL.sub(" ", caption)
    tags = [
        _normalise_tag(run)
        for before, run in _runs(text)
        if before and before in _HASH_SIGNS and not all(c.isdigit() for c in run)
    ]
    return list(dict.fromkeys(tags))


def word_list(text: str) -> frozenset[str]:
    """A word list written as one whitespace-separated string (easier to read and review)."""
    return frozenset(text.split())


def letter_words(text: str) -> set[str]:
    """The lower-case runs of letters of ``text``: how a caption is matched against word lists
    (the person and dog nouns of the hallucination rate), as the shared ``dev-check`` does."""
    return set(re.findall(r"[a-z]+", text.lower()))


# English function words: never a hashtag (the tagger can mistake them for nouns), never a profile
# term, never a benchmark user's content tag.
FUNCTION_WORDS = word_list(
    """a an the this that these those some any no each every all both either neither other another
    such own same i me my myself we us our ours ourselves you your yours yourself yourselves he
    him his himself she her hers herself it its itself they them their theirs themselves who whom
    whose which what where when why how here there now then once again also just only very too
    and or but nor so yet if than because until while whilst as of at by for from in into onto on
    off out over under up down to with without about above below across along among around behind
    beside between beyond near through toward towards upon within after before during further
    against via is are was were be been being am do does did doing has have had having could
    should let get got not one two three four five six seven eight nine ten dozen several many
    few much more most less least lot lots"""
)


# Function words in running text that are also nouns a photo can show (a can, a will): stopped
# in profile terms, kept in hashtags.
_AUXILIARY_NOUNS = word_list("can will")


# What splitting a caption at apostrophes leaves of don't, I'm, we'll and friends.
_APOSTROPHE_FRAGMENTS = word_list(
    """s t d ll m o re ve y im don isn aren wasn weren hasn haven hadn doesn didn won wouldn shan
    shouldn couldn mustn ain"""
)


# What profile terms skip.
STOPWORDS = FUNCTION_WORDS | _AUXILIARY_NOUNS | _APOSTROPHE_FRAGMENTS


def caption_terms(caption: str) -> set[str]:
    """The profile terms of one caption: words and ``#hashtags``.

    Words are runs of letters, casefolded; stopwords, anything with a digit, @mentions, URLs and
    one-letter runs are dropped.
    """
    terms = {f"#{tag}" for tag in extract_hashtags(caption)}
    text = _MENTION.sub(" ", _URL.sub(" ", caption))
    for before, run in _runs(text):
        word = _normalise_tag(run)
        if before and before in _HASH_SIGNS:
            continue
        if len(word) > 1 and word not in STOPWORDS and not any(c.isdigit() for c in word):
            terms.add(word)
    return terms


def tfidf_profile(
    posts: Iterable[tuple[str, Sequence[str]]], idf: Callable[[str], float], size: int
) -> list[tuple[str, float]]:
    """The ``size`` most distinctive words and ``#hashtags`` of (caption, hashtags) posts, best
    first, ties by term.

    TF-IDF: TF is the share of the posts that use a term (a term repeated inside one post counts
    once); IDF is ``idf`` of the term (a hashtag looked up without its '#'), a background such as
    HARRISON's, since one user's history alone gives no document frequencies. A post's terms are
    its :func:`caption_terms` and its hashtags.
    """
    counts: Counter[str] = Counter()
    n_posts = 0
    for caption, hashtags in posts:
        n_posts += 1
        tags = {f"#{_normalise_tag(tag)}" for tag in hashtags}
        counts.update(caption_terms(caption) | tags)
    scores = [(term, n / n_posts * idf(term.removeprefix("#"))) for term, n in counts.items()]
    scores.sort(key=lambda s: (-s[1], s[0]))
    return scores[:size]


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) escaped as ``repr``
    does, so a name cannot forge a line of its own in a log."""
    return "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in text
    )
