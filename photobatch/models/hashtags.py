"""Turn captions (and classifier labels) into hashtags people actually post.

Tags are stored WITHOUT ``#`` (``core.text.format_hashtag`` adds it for display). A well-formed
tag is lowercase ASCII ``[a-z0-9_]+`` after folding, or lowercase Unicode letters/marks/digits
when it carries a non-Latin script (``москва`` stays ``москва``; it is never folded to nothing).

Normalization (``normalize_phrase``): NFKC, lowercase, ASCII-fold Latin letters (``é -> e``,
``ß -> ss``, ``ø -> o``) but leave other scripts intact, singularize the head word (``dogs ->
dog``, never ``grass -> gras``), drop punctuation and join the words (``golden retriever ->
goldenretriever``). Plurals are merged by rules (NLTK's WordNet lemmatizer would need an
``nltk_data`` download, which photobatch never does) and the form HARRISON uses wins when the
prior knows it (``jeans -> jean``, ``clothes`` stays).

Stop/generic words are dropped: function words the tagger can mistake for nouns
(``core.text.FUNCTION_WORDS``), and caption nouns that say where or how much rather than what
(``GENERIC_NOUNS``: "side", "front", "group", "something", "person", "picture", "outdoors").
Person words ("man", "woman", "girl") are real Instagram tags and stay, but rank below the things
in the photo and never seed expansions: in HARRISON their neighbours are identity/selfie tags
(#gay, #brunette) that would be guesses about the people in a private photo.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from photobatch.core.config import HashtagConfig
from photobatch.core.text import FUNCTION_WORDS, word_list
from photobatch.models.base import Model
from photobatch.models.prior import PRIOR_FILE, HashtagPrior, default_prior, prior_file
from photobatch.weights import shipped

GENERIC_NOUNS = word_list(
    """something someone somebody anything anyone everything everyone nothing nobody thing stuff
    kind sort type way part piece bit side front back top bottom middle center centre edge end
    corner area spot place background foreground distance left right rear inside outside group
    bunch pair set number row line person individual picture photo image photograph shot
    closeup close-up outdoors indoors"""
)
PERSON_WORDS = word_list(
    "man woman people boy girl child kid guy lady toddler adult couple blonde blond brunette"
)
ENGAGEMENT_TAGS = word_list(
    """like likeforlike likeforfollow likesforlikes likeforlikes lfl likeback likeme likeit follow
    followme followforfollow followback followalways follower following followtrain followher fff
    sfs tagsforlikes tagsforlike tagsforlikesapp tagforlikes spamforspam gain gainpost gaintrick
    shoutout doubletap comment instalike instalikes tflers tagsta toptags hashtag hashtags repost
    instafollow"""
)
# Content-free but popular HARRISON tags: the last resort when there is nothing else to say.
FALLBACK_TAGS = ("photooftheday", "picoftheday", "instagood", "photography", "photo")

_LATIN_EXTRA = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th"}
_LATIN_EXTRA |= {"\u0131": "i", "ħ": "h", "ŧ": "t", "ŀ": "l", "ĸ": "k", "ŉ": "n"}
_ASCII_TAG = re.compile(r"[a-z0-9_]+")

_IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "geese": "goose", "mice": "mouse", "oxen": "ox", "leaves": "leaf", "wolves": "wolf",
    "knives": "knife", "wives": "wife", "shelves": "shelf", "halves": "half", "calves": "calf",
    "loaves": "loaf", "scarves": "scarf", "thieves": "thief", "buses": "bus", "lenses": "lens",
    "tomatoes": "tomato", "potatoes": "potato", "heroes": "hero", "mangoes": "mango",
}  # fmt: skip
_INVARIANT = word_list(
    "news series species means christmas texas paris canvas atlas lens chaos cosmos shorts "
    "scissors clothes people sheep fish deer aircraft"
)
_IE_SINGULARS = word_list(
    """movie cookie selfie zombie brownie hoodie smoothie calorie rookie goalie prairie genie pixie
    auntie birdie beanie collie veggie doggie hippie freebie cutie indie foodie newbie pie tie
    lie"""
)
_HEAD_WEIGHT, _MODIFIER_WEIGHT, _PERSON_FACTOR = 1.0, 0.5, 0.5
_COMPOUND_WEIGHT = 0.9
_MIN_SIMILARITY, _NEIGHBOURS = 0.6, 8


def fold(text: str) -> str:
    """NFKC + lowercase + ASCII-fold Latin letters; other scripts pass through unchanged."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).lower():
        if ch.isascii():
            out.append(ch)
        elif ch in _LATIN_EXTRA:
            out.append(_LATIN_EXTRA[ch])
        elif unicodedata.combining(ch) and out and out[-1].isascii():
            continue  # a stray accent on a Latin letter NFKC could not compose
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            base, marks = decomposed[0], decomposed[1:]
            latin = base.isascii() and base.isalpha() and all(map(unicodedata.combining, marks))
            out.append(base if latin else ch)
    return unicodedata.normalize("NFC", "".join(out))


def _clean(word: str) -> str:
    """Keep letters, marks (needed by Indic and other scripts), digits and underscores only."""
    return "".join(c for c in word if c.isalnum() or c == "_" or unicodedata.category(c)[0] == "M")


def is_well_formed(tag: str) -> bool:
    """``[a-z0-9_]+`` if ASCII, else lowercase letters/marks/digits; never digits only."""
    if not tag or tag.isdigit() or tag != tag.lower():
        return False
    if tag.isascii():
        return _ASCII_TAG.fullmatch(tag) is not None
    return _clean(tag) == tag and any(c.isalpha() for c in tag)


def _singular_candidates(word: str) -> list[str]:
    """Possible singulars of an English word, most likely first; [] when it is not plural."""
    if word in _IRREGULAR:
        return [_IRREGULAR[word]]
    if (
        not word.isascii()
        or len(word) <= 3
        or word in _INVARIANT
        or not word.endswith("s")
        or word.endswith(("ss", "us", "is", "ics"))
    ):
        return []
    if word.endswith("ies") and len(word) > 4:
        ie, y = word[:-1], word[:-3] + "y"
        return [ie, y] if ie in _IE_SINGULARS else [y, ie]
    if word.endswith("sses") or word.endswith(("xes", "zes", "ches", "shes")):
        return [word[:-2], word[:-1]]
    return [word[:-1]]


def singularize(word: str, vocab: Iterable[str] | HashtagPrior = ()) -> str:
    """``dogs -> dog``, ``puppies -> puppy``, ``grass -> grass``; a form in ``vocab`` wins."""
    return _resolve_head("", word, vocab)


def _resolve_head(prefix: str, head: str, vocab: Iterable[str] | HashtagPrior) -> str:
    candidates = _singular_candidates(head)
    known = vocab if isinstance(vocab, HashtagPrior) else frozenset(vocab)
    for form in (*candidates, head):
        if prefix + form in known:
            return prefix + form
    return prefix + (candidates[0] if candidates else head)


def normalize_phrase(words: Sequence[str], vocab: Iterable[str] | HashtagPrior = ()) -> str | None:
    """A phrase's words -> one well-formed tag, or None when it is a stop/generic word."""
    folded = [w for w in (_clean(fold(w)) for w in words) if w]
    if not folded or any(w in FUNCTION_WORDS for w in folded):
        return None
    if len(folded) == 1 and folded[0] in GENERIC_NOUNS:
        return None
    if len(folded) > 1 and any(w in GENERIC_NOUNS for w in folded):
        return None
    tag = _resolve_head("".join(folded[:-1]), folded[-1], vocab)
    if tag.isascii() and len(tag) < 2:
        return None
    return tag if is_well_formed(tag) else None


def normalize_tag(text: str, vocab: Iterable[str] | HashtagPrior = ()) -> str | None:
    """Free text (``"Golden Retriever"``, ``"#Café"``, ``"sea-side"``) -> one tag or None."""
    return normalize_phrase(re.split(r"[\s\-#]+", text), vocab)


def dedupe(tags: Iterable[str]) -> list[str]:
    """Drop repeats, keeping the first (best-ranked) occurrence."""
    return list(dict.fromkeys(tags))


def caption_tags(caption: str, prior: HashtagPrior) -> dict[str, float]:
    """Scores of the tags a caption names: head nouns over modifiers, known tags over new ones.

    score = role x person factor x (0.6 + 0.4 x popularity in HARRISON) / (1 + 0.05 x position),
    summed over mentions. Prepositional phrases ("set of stairs") never become tags; their nouns
    do on their own. A multiword phrase becomes a tag only when Instagram uses it (``long hair ->
    longhair``, ``blue sky -> bluesky``): other joins were mostly tagger slips or colour + noun
    ("pinkcostume"); curated compounds still come from labels (``goldenretriever``).
    """
    return _caption_scores(caption, prior)[0]


def _caption_scores(caption: str, prior: HashtagPrior) -> tuple[dict[str, float], set[str]]:
    """:func:`caption_tags` plus the tags that were heads (only those seed expansions, since a
    modifier's neighbours drift: "pink costume" would add every colour, "rock face" #band)."""
    # Imported here: NLTK takes a second to import, which a scan that suggests nothing never needs.
    from photobatch.models.phrases import extract_phrases

    phrases = extract_phrases(caption)
    heads = {p.start + len(p.tokens) - 1 for p in phrases if p.maximal}
    scores: dict[str, float] = {}
    head_tags: set[str] = set()
    for phrase in phrases:
        if not phrase.basic or len(phrase.tokens) > 3:
            continue
        tag = normalize_phrase(phrase.tokens, prior)
        if tag is None:
            continue
        is_head = len(phrase.tokens) > 1 or phrase.start in heads
        if len(phrase.tokens) == 1:
            role = _HEAD_WEIGHT if is_head else _MODIFIER_WEIGHT
        elif tag in prior:
            role = _COMPOUND_WEIGHT
        else:
            continue
        if tag in PERSON_WORDS:
            role *= _PERSON_FACTOR
        if is_head:
            head_tags.add(tag)
        score = role * (0.6 + 0.4 * prior.popularity(tag)) / (1 + 0.05 * phrase.start)
        scores[tag] = scores.get(tag, 0.0) + score
    return scores, head_tags


def label_tags(labels: Sequence[str], prior: HashtagPrior) -> list[str]:
    """ImageNet-style labels (``"seashore, coast, seacoast"``) -> tags from each first name."""
    tags = (normalize_tag(label.split(",")[0], prior) for label in labels)
    return dedupe(t for t in tags if t)


def _label_seeds(labels: Sequence[str], prior: HashtagPrior) -> dict[str, float]:
    """Words of any label synonym that the prior knows (``"tabby, tabby cat"`` -> ``cat``)."""
    seeds: dict[str, float] = {}
    for rank, label in enumerate(labels):
        for name in label.split(","):
            for word in name.split():
                tag = normalize_phrase([word], prior)
                if tag in prior and tag not in seeds:
                    seeds[tag] = 1.0 / (1 + rank)
    return seeds


def expand(seeds: dict[str, float], prior: HashtagPrior) -> dict[str, float]:
    """Related hashtags: sum over seeds of seed weight x cosine, for neighbours >= 0.6 cosine."""
    top = max(seeds.values(), default=1.0)
    scores: dict[str, float] = {}
    for seed, weight in sorted(seeds.items()):
        if seed in PERSON_WORDS:
            continue
        for tag, sim in prior.related(seed, _NEIGHBOURS):
            if sim >= _MIN_SIMILARITY and tag not in ENGAGEMENT_TAGS:
                scores[tag] = scores.get(tag, 0.0) + weight / top * sim
    return scores


def _ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda t: (-scores[t], t))


def suggest_hashtags(
    caption: str | None,
    labels: Sequence[str],
    prior: HashtagPrior,
    max_tags: int = 10,
    min_tags: int = 3,
) -> list[str]:
    """Best-first hashtags (without ``#``) for one photo; deterministic.

    Order: the caption's own tags, then prior expansions of them, then the classifier labels. With
    no usable caption the labels lead and seed the expansions. Popular content-free tags
    (``FALLBACK_TAGS``) top the list up to ``min_tags``; it is cut at ``max_tags``.
    """
    from_caption, heads = _caption_scores(caption or "", prior)
    from_labels = label_tags(labels, prior)
    if from_caption:
        primary = _ranked(from_caption)
        seeds = {t: s for t, s in from_caption.items() if t in heads and t in prior}
        tail = from_labels
    else:
        primary, tail = from_labels, []
        seeds = _label_seeds(labels, prior)
    expansions = [t for t in _ranked(expand(seeds, prior)) if t not in primary]
    tags = dedupe([*primary, *expansions, *tail])
    if len(tags) < min_tags:
        fallback = sorted(
            (t for t in FALLBACK_TAGS if t in prior), key=prior.doc_freq, reverse=True
        )
        tags = dedupe([*tags, *fallback])
    return tags[:max_tags]


class HashtagSuggester(Model):
    """The shipped HARRISON prior with the configured tag counts: what a scan's hashtags come from
    (``Grounding.hashtags`` orders them by evidence)."""

    name = "hashtags"

    def __init__(self, config: HashtagConfig | None = None) -> None:
        super().__init__()
        self.config = config or HashtagConfig()
        self._prior: HashtagPrior | None = None

    def files(self) -> tuple[Path, ...]:
        return prior_file(shipped(PRIOR_FILE)).files()

    def settings(self) -> dict[str, object]:
        return {"max_tags": self.config.max_tags, "min_tags": self.config.min_tags}

    def _load(self) -> None:
        self._prior = default_prior()

    @property
    def prior(self) -> HashtagPrior:
        self.load()
        assert self._prior is not None
        return self._prior
