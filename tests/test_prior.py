"""The HARRISON hashtag prior: real vocabulary, sensible neighbours, reproducible shipped file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photobatch.models import hashtags, prior
from photobatch.models.hashtags import HashtagSuggester
from photobatch.models.prior import (
    HashtagPrior,
    PriorError,
    PriorFile,
    build_prior,
    default_prior,
    main_build,
)

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "hashtag_prior.npz"


@pytest.fixture(scope="module")
def rebuilt(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One rebuild through the CLI's library entry point (about a second on an idle machine)."""
    out = tmp_path_factory.mktemp("models") / "hashtag_prior.npz"
    return main_build(research_data / "harrison", out), out


@pytest.fixture(scope="module")
def built(rebuilt: tuple[str, Path]) -> HashtagPrior:
    return HashtagPrior.load(rebuilt[1])


def test_vocabulary_is_harrisons(built: HashtagPrior, research_data: Path) -> None:
    upstream = {
        line.split()[0]
        for line in (research_data / "harrison/vocab_index.txt").read_text().splitlines()
    }
    assert len(built) == 997 == len(upstream)
    assert set(built.vocab) == upstream
    assert built.n_docs == 57383
    assert built.vocab[0] == "love"  # the most used tag comes first


def test_dog_expands_to_dog_hashtags(built: HashtagPrior) -> None:
    related = [t for t, _ in built.related("dog", 10)]
    assert {"puppy", "dogsofinstagram"} <= set(related)
    assert "dog" not in related
    sims = [s for _, s in built.related("dog", 10)]
    assert sims == sorted(sims, reverse=True)
    assert built.related("no-such-tag", 5) == []


def test_idf_orders_by_rarity(built: HashtagPrior) -> None:
    assert built.idf("love") < built.idf("puppy") < built.idf("never-posted-tag")
    assert built.idf("love") > 1.0
    assert built.doc_freq("dog") == 1460


def test_save_load_round_trip_without_pickle(built: HashtagPrior, tmp_path: Path) -> None:
    built.save(tmp_path / "prior.npz")
    assert (tmp_path / "prior.json").is_file()
    with np.load(tmp_path / "prior.npz", allow_pickle=False) as arrays:
        assert arrays["vectors"].dtype == np.float32
    loaded = HashtagPrior.load(tmp_path / "prior.npz")
    assert loaded.vocab == built.vocab
    np.testing.assert_array_equal(loaded.df, built.df)
    np.testing.assert_array_equal(loaded.vectors, built.vectors)


def test_shipped_file_equals_a_fresh_build(built: HashtagPrior) -> None:
    shipped = HashtagPrior.load(SHIPPED)
    assert shipped.vocab == built.vocab
    np.testing.assert_array_equal(shipped.df, built.df)
    np.testing.assert_allclose(shipped.vectors, built.vectors, atol=1e-4)
    assert shipped.params == built.params


def test_main_build_summary(rebuilt: tuple[str, Path]) -> None:
    summary, out = rebuilt
    assert "997 tags" in summary and str(out) in summary and "\n" not in summary
    assert out.with_suffix(".json").is_file()


def test_build_is_deterministic_in_memory(built: HashtagPrior, research_data: Path) -> None:
    small = build_prior(research_data / "harrison", dim=8)
    assert small.vocab == built.vocab and small.vectors.shape == (997, 8)


def test_default_prior_is_the_shipped_file_loaded_once() -> None:
    prior = default_prior()
    assert prior is default_prior()
    assert len(prior) == 997 and "dog" in prior


def tiny_prior(vocab: list[str]) -> HashtagPrior:
    n = len(vocab)
    return HashtagPrior(tuple(vocab), np.ones(n, np.int64), np.eye(n, 2, dtype=np.float32), 10)


def test_a_prior_replaced_in_place_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model contract (models/base.py): a model reloads when its file changes, as the hashtag
    # model of a long-running watch must when the prior is rebuilt under it.
    for module in (prior, hashtags):
        monkeypatch.setattr(module, "shipped", lambda name: tmp_path / name)
    tiny_prior(["dog", "beach"]).save(tmp_path / "hashtag_prior.npz")
    model = HashtagSuggester()
    before = model.version
    assert model.prior.vocab == default_prior().vocab == ("dog", "beach")
    tiny_prior(["cat", "sofa", "nap"]).save(tmp_path / "hashtag_prior.npz")
    assert model.version != before  # results of the old prior are stale
    assert model.prior.vocab == default_prior().vocab == ("cat", "sofa", "nap")


def test_an_unreadable_prior_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PriorError, match=r"absent\.npz: cannot read this hashtag prior"):
        PriorFile(tmp_path / "absent.npz").load()
