"""Beam search and greedy decoding on a small random model (no data, no encoder needed)."""

from __future__ import annotations

import pytest
import torch

from photobatch.models.nn.decoding import DecodeOptions, _constrain, beam_search, greedy
from photobatch.models.nn.sat import SATConfig, ShowAttendTell

START, END = 1, 2


def make_model(seed: int = 0, vocab: int = 40) -> ShowAttendTell:
    torch.manual_seed(seed)
    model = ShowAttendTell(
        SATConfig(vocab_size=vocab, encoder_dim=16, embed_dim=8, hidden_dim=12, attention_dim=10)
    ).eval()
    with torch.no_grad():
        # Sharper word distributions: the search has real choices to make, and ties are unlikely.
        model.output.weight.mul_(10)
    return model


def maps(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 16, 7, 7, generator=torch.Generator().manual_seed(seed))


def trigrams(tokens: list[int]) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_is_greedy(seed: int) -> None:
    model, feats = make_model(seed), maps(8, seed)
    # Greedy knows no length normalization; without it, one beam is exactly greedy.
    options = DecodeOptions(beam_size=1, max_length=15, min_length=2, length_penalty=0.0)
    for g, b in zip(
        greedy(model, feats, START, END, options),
        beam_search(model, feats, START, END, options),
        strict=True,
    ):
        assert g.tokens == b.tokens
        torch.testing.assert_close(g.attention, b.attention)


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_batched_equals_one_by_one(beam: int) -> None:
    model, feats = make_model(), maps(6)
    options = DecodeOptions(beam_size=beam, max_length=15, min_length=2, length_penalty=0.7)
    batched = beam_search(model, feats, START, END, options)
    single = [beam_search(model, feats[i : i + 1], START, END, options)[0] for i in range(6)]
    assert [h.tokens for h in batched] == [h.tokens for h in single]
    for a, b in zip(batched, single, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)
    greedy_batched = greedy(model, feats, START, END, options)
    greedy_single = [greedy(model, feats[i : i + 1], START, END, options)[0] for i in range(6)]
    assert [h.tokens for h in greedy_batched] == [h.tokens for h in greedy_single]


def test_lengths_and_no_repeated_trigrams() -> None:
    model, feats = make_model(4), maps(12, 4)
    for beam in (1, 4):
        options = DecodeOptions(beam_size=beam, max_length=12, min_length=5)
        for hyp in beam_search(model, feats, START, END, options):
            assert 5 <= len(hyp.tokens) <= 12
            assert END not in hyp.tokens
            assert all(isinstance(t, int) for t in hyp.tokens)
            assert hyp.attention.shape == (len(hyp.tokens), 49)
            grams = trigrams(hyp.tokens)
            assert len(grams) == len(set(grams))


def test_photo_whose_beams_never_finish_still_gets_a_caption() -> None:
    model = make_model(5)
    with torch.no_grad():
        model.output.bias[END] = -1e4  # <end> is never likely enough to be chosen
    options = DecodeOptions(beam_size=3, max_length=7, min_length=1)
    for hyp in beam_search(model, maps(4), START, END, options):
        assert len(hyp.tokens) == 7
        assert hyp.attention.shape == (7, 49)


def test_empty_batch_gives_empty_list() -> None:
    model = make_model()
    empty = torch.zeros(0, 16, 7, 7)
    assert beam_search(model, empty, START, END) == []
    assert greedy(model, empty, START, END) == []


def test_trigram_blocking_bans_exactly_the_repeating_word() -> None:
    history = torch.tensor([[5, 6, 7, 5, 6]])
    logp = torch.zeros(1, 10)
    out = _constrain(logp, history, END, DecodeOptions(min_length=0))
    assert out[0, 7] == float("-inf")
    assert torch.isfinite(out[0, [i for i in range(10) if i != 7]]).all()


def test_end_is_forbidden_before_min_length() -> None:
    logp = torch.zeros(2, 10)
    short = _constrain(logp, torch.tensor([[5], [6]]), END, DecodeOptions(min_length=3))
    assert (short[:, END] == float("-inf")).all()
    long_enough = _constrain(logp, torch.tensor([[5, 6, 7]] * 2), END, DecodeOptions(min_length=3))
    assert torch.isfinite(long_enough[:, END]).all()


@pytest.mark.parametrize("search", [greedy, beam_search])
def test_banned_tokens_are_never_emitted_even_when_the_model_prefers_them(search) -> None:
    model, feats = make_model(), maps(6)
    options = DecodeOptions(beam_size=3, max_length=12, min_length=2)
    unk = 3
    with torch.no_grad():
        model.output.bias[unk] = 50.0  # <unk> now wins every step it is allowed
    assert all(unk in h.tokens for h in search(model, feats, START, END, options))
    for hyp in search(model, feats, START, END, options, banned=(0, START, unk)):
        assert not {0, START, unk} & set(hyp.tokens)
        assert hyp.tokens  # still a caption, made of real words


def test_per_photo_bans_apply_to_their_photo_only() -> None:
    model, feats = make_model(), maps(4)
    options = DecodeOptions(beam_size=3, max_length=12, min_length=2)
    plain = beam_search(model, feats, START, END, options)
    word = plain[1].tokens[0]  # photo 1's first word, banned for photo 1 alone
    mask = torch.zeros(4, 40, dtype=torch.bool)
    mask[1, word] = True
    banned = beam_search(model, feats, START, END, options, photo_banned=mask)
    assert word not in banned[1].tokens and banned[1].tokens
    assert [h.tokens for i, h in enumerate(banned) if i != 1] == [
        h.tokens for i, h in enumerate(plain) if i != 1
    ]
    # The same bans as one search per photo (photos leave the batch as they finish).
    single = [
        beam_search(model, feats[i : i + 1], START, END, options, photo_banned=mask[i : i + 1])[0]
        for i in range(4)
    ]
    assert [h.tokens for h in banned] == [h.tokens for h in single]
