"""Text of the user's posts: hashtags in captions, profile terms and the stopwords they skip.

One place for how photobatch reads words out of captions, used by the Instagram import, the user
profile, training and every evaluation alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


_MENTION = re.compile(r"@[\w.]+")


_HASH_SIGNS = "#\uff03"  # '#' and the full-width U+FF03 that CJK keyboards type


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


# Common English function words and the fragments ``don't`` and friends split into.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with you your yours yourself yourselves s t d ll m o re ve y don isn
    aren wasn weren hasn haven hadn doesn didn won wouldn shan shouldn couldn mustn ain let get
    got im also us one via"""


STOPWORDS = frozenset(_STOPWORD_TEXT.split())


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


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) escaped as ``repr``
    does, so a name cannot forge a line of its own in a log."""
    return "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in text
    )
