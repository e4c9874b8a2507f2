"""CSMN model: masking of empty memory, decoding without duplicates."""

from __future__ import annotations

import torch

from photobatch.models.nn.csmn import BOS, CSMN, PAD, CSMNConfig, MemoryCNN


def _model() -> CSMN:
    torch.manual_seed(0)
    model = CSMN(CSMNConfig(vocab_size=30, memory_dim=16, filters=4, context_len=6, max_len=5))
    return model.eval()


def test_empty_memory_cells_get_zero_attention() -> None:
    model = _model()
    image = torch.randn(2, 1280).abs()
    context = torch.tensor([[5, 6, 7, PAD, PAD, PAD], [PAD] * 6])
    prev = torch.tensor([[BOS, 8, 9, 10], [BOS, 11, PAD, PAD]])
    p = model.attention(image, context, prev)  # (B, T, 1 + 6 + 3)
    assert torch.allclose(p.sum(-1), torch.ones(2, 4))
    assert (p[0, :, 4:7] == 0).all()  # context padding
    assert (p[1, :, 1:7] == 0).all()  # an empty profile
    for t in range(4):  # step t reads only the t tokens written before it
        assert (p[0, t, 7 + t :] == 0).all()
        assert (p[0, t, 7 : 7 + t] > 0).all()
    assert (p[1, :, 8:] == 0).all()  # padding after the end of the sequence


def test_masked_cells_do_not_change_the_output() -> None:
    model = _model()
    image = torch.randn(1, 1280).abs()
    context = torch.tensor([[5, 6, PAD, PAD, PAD, PAD]])
    prev = torch.tensor([[BOS, 8]])
    before = model(image, context, prev)
    with torch.no_grad():
        for emb in (model.context_a, model.context_c, model.output_a, model.output_c):
            emb.weight[PAD] = 5.0  # garbage in the padding cell's embedding
    assert torch.allclose(before, model(image, context, prev))


def test_memory_cnn_of_an_empty_memory_is_zero() -> None:
    cnn = MemoryCNN(8, 3, (3, 4, 5))
    out = cnn(torch.randn(2, 2, 8), torch.zeros(2, 2, dtype=torch.bool))
    assert out.shape == (2, 9)
    assert (out == 0).all()


def test_decoding_never_repeats_a_tag() -> None:
    model = _model()
    for beam in (1, 3):
        tokens, dists = model.beam(torch.randn(1280).abs(), torch.tensor([5, 6, 0, 0, 0, 0]), beam)
        assert len(tokens) == len(set(tokens)) <= 5
        assert len(dists) >= len(tokens)
