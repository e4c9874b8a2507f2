"""How the index is searched: what a photo is found by, how a query is read, how hits rank.

A photo is found by its caption and the objects grounding supports in it, in one full-text
column of *terms* (``core.objects.search_terms``), and by its hashtags: a multi-word name is one
term, so 'dog' does not find a hot dog; an object's own name is a term wherever a word names it
(a caption's "puppy" is found by 'dog'); terms are singular, so 'dogs' finds 'dog'. No stemmer:
Porter's would make 'train' find every #training.

A query of plain words (letters, digits, ``#``, ``-``, apostrophes) is read the same way and every
term must match. Hits rank by how sure the photo is to show what was asked: for each term, the
probability of the object it names, else the evidence score of the hashtag, else the caption's
confidence; the weakest term counts. A query with full-text syntax (quotes, ``*``, ``:``,
parentheses, AND/OR/NOT/NEAR) goes to SQLite's FTS5 as it is, but for a quoted phrase, read as
terms (``"hot dog"`` is ``"hotdog"``); as the syntax may ask for any of its words, its hits rank
by the surest object or hashtag among them, else by the caption's confidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from photobatch.core.errors import UserError
from photobatch.core.objects import search_terms, term, term_owners
from photobatch.core.records import Analysis

_FTS_SYNTAX = re.compile(r"[\"*():^{}+]|\b(?:AND|OR|NOT|NEAR)\b")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
_PHRASE = re.compile(r'"([^"]*)"')


class SearchQueryError(UserError, ValueError):
    """A query that cannot be searched (empty, or broken full-text syntax); says why. A
    ValueError too: the caller's input is wrong, not the index (the review page answers 400)."""


@dataclass(frozen=True)
class SearchHit:
    """One photo a search found."""

    path: str
    caption: str | None
    caption_confidence: float | None
    relevance: float  # 0-1: how sure the photo is to show what was searched


def indexed_terms(analysis: Analysis) -> str:
    """What the full-text index reads of a photo besides its hashtags: its caption's terms and
    the names of the objects grounding supports."""
    words = search_terms(analysis.caption or "")
    words += [term(name) for name in analysis.objects]
    return " ".join(words)


@dataclass(frozen=True)
class Query:
    """A parsed query: the FTS5 match expression, its terms, and whether a hit must match all
    of them (plain words) or may match any (FTS5 syntax)."""

    fts: str
    terms: tuple[str, ...]
    every: bool = True

    def hit(
        self,
        path: str,
        caption: str | None,
        confidence: float | None,
        objects: dict[str, float],
        tag_scores: dict[str, float],
    ) -> SearchHit:
        """A matching photo with its relevance to this query."""
        base = confidence or 0.0
        owners = term_owners()
        known = {t: objects[owners[t]] for t in self.terms if owners.get(t) in objects}
        known |= {t: tag_scores[t] for t in self.terms if t in tag_scores and t not in known}
        if self.every:  # every term matched: the weakest counts (a caption word: its confidence)
            relevance = min((known.get(t, base) for t in self.terms), default=base)
        else:  # any may have matched: the surest object or hashtag asked for, else the caption
            relevance = max(known.values(), default=base)
        return SearchHit(path, caption, confidence, round(float(relevance), 3))


def parse_query(query: str) -> Query:
    """Read a query as plain words or as FTS5 syntax (see the module's description)."""
    if not query.strip():
        raise SearchQueryError("search: the query is empty: give a word to look for")
    if _FTS_SYNTAX.search(query):
        fts = _PHRASE.sub(lambda m: f'"{" ".join(search_terms(m[1], classes=False))}"', query)
        words = [w for w in re.findall(r"\w+", fts) if w not in _OPERATORS]
        return Query(fts, tuple(dict.fromkeys(search_terms(" ".join(words), classes=False))), False)
    terms = tuple(dict.fromkeys(search_terms(query, classes=False)))
    if not terms:
        raise SearchQueryError(f"search: {query!r} has no words to look for")
    return Query(" ".join(f'"{t}"' for t in terms), terms)
