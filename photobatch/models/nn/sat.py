"""Show, Attend and Tell (Xu et al. 2015) with soft attention, over a frozen encoder's feature map.

The encoder's ``(N, C, 7, 7)`` map becomes 49 region vectors. At every step the decoder attends
over them (additive attention), scales the context by a learned gate ``beta = sigmoid(f(h))``,
and feeds ``[word embedding; context]`` to an LSTM cell whose initial state comes from the mean
region vector. Training adds the doubly stochastic penalty ``sum_i (1 - sum_t alpha_ti)^2`` so
every region gets looked at over a caption.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class SATConfig:
    """Sizes of the captioner; stored in checkpoints as a plain dict."""

    vocab_size: int
    encoder_dim: int = 1280
    feature_dim: int | None = None  # learned projection of the regions first (None: keep as is)
    embed_dim: int = 512
    hidden_dim: int = 512
    attention_dim: int = 512
    dropout: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def regions(feature_map: Tensor) -> Tensor:
    """``(N, C, H, W)`` encoder map -> ``(N, H*W, C)`` region vectors (49 for a 7x7 map)."""
    return feature_map.flatten(2).transpose(1, 2)


class SoftAttention(nn.Module):
    """Additive (Bahdanau) attention of the decoder state over the regions."""

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, attention_dim)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def project(self, feats: Tensor) -> Tensor:
        """The step-independent half of the score, computed once per caption."""
        return self.encoder_proj(feats)

    def forward(self, feats: Tensor, projected: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Return the context ``(N, C)`` and the weights ``alpha`` ``(N, R)`` (rows sum to 1)."""
        energy = self.score(torch.tanh(projected + self.hidden_proj(h).unsqueeze(1))).squeeze(2)
        alpha = torch.softmax(energy.float(), dim=1).to(feats.dtype)
        context = torch.bmm(alpha.unsqueeze(1), feats).squeeze(1)
        return context, alpha


@dataclass
class DecoderState:
    """What one decoding step needs from the previous one, for a batch of sequences."""

    h: Tensor
    c: Tensor
    feats: Tensor  # (N, R, C)
    projected: Tensor  # (N, R, A)

    def select(self, index: Tensor) -> DecoderState:
        """Rows picked by ``index`` (beam search reorders and repeats sequences)."""
        return DecoderState(self.h[index], self.c[index], self.feats[index], self.projected[index])

    def reorder(self, index: Tensor) -> DecoderState:
        """Like ``select`` for an ``index`` that maps every row to a row of the same photo (beams
        swapping places): the regions are then unchanged, so only the LSTM state is gathered."""
        return DecoderState(self.h[index], self.c[index], self.feats, self.projected)


class ShowAttendTell(nn.Module):
    """The soft-attention LSTM captioner."""

    def __init__(self, config: SATConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        d = c.feature_dim or c.encoder_dim
        # Projecting 1280-d regions down makes every later layer (and training) several times
        # cheaper; the paper's VGG regions were 512-d.
        self.project = nn.Linear(c.encoder_dim, d) if c.feature_dim else nn.Identity()
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.attention = SoftAttention(d, c.hidden_dim, c.attention_dim)
        self.init_h = nn.Linear(d, c.hidden_dim)
        self.init_c = nn.Linear(d, c.hidden_dim)
        self.gate = nn.Linear(c.hidden_dim, d)
        self.lstm = nn.LSTMCell(c.embed_dim + d, c.hidden_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.hidden_dim, c.vocab_size)

    def start(self, feature_map: Tensor) -> DecoderState:
        """Initial LSTM state from the mean region vector (paper, section 3.1.2)."""
        feats = self.project(regions(feature_map))
        mean = feats.mean(dim=1)
        return DecoderState(
            h=torch.tanh(self.init_h(mean)),
            c=torch.tanh(self.init_c(mean)),
            feats=feats,
            projected=self.attention.project(feats),
        )

    def _advance(self, words: Tensor, state: DecoderState) -> tuple[DecoderState, Tensor]:
        """One LSTM step on the previous words ``(N,)``; returns the new state and ``alpha``."""
        context, alpha = self.attention(state.feats, state.projected, state.h)
        context = torch.sigmoid(self.gate(state.h)) * context
        lstm_in = torch.cat([self.embedding(words), context], dim=1)
        h, c = self.lstm(lstm_in, (state.h, state.c))
        return DecoderState(h, c, state.feats, state.projected), alpha

    def step(self, words: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """Decoding step: log-probabilities ``(N, V)`` of the next word, new state, ``alpha``."""
        state, alpha = self._advance(words, state)
        logits = self.output(self.dropout(state.h))
        return torch.log_softmax(logits.float(), dim=1), state, alpha

    def forward(
        self, feature_map: Tensor, captions: Tensor, owners: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Teacher forcing over ``captions`` ``(N, T)`` (``<start>`` first).

        ``owners`` (N,) maps each caption to its row of ``feature_map``, so the five captions of
        a photo share one pass over its regions. Returns logits ``(N, T-1, V)`` predicting
        ``captions[:, 1:]`` and ``alpha`` ``(N, T-1, R)``.
        """
        state = self.start(feature_map)
        if owners is not None:
            state = state.select(owners)
        hidden, alphas = [], []
        for t in range(captions.shape[1] - 1):
            state, alpha = self._advance(captions[:, t], state)
            hidden.append(state.h)
            alphas.append(alpha)
        # One output projection over all steps is much cheaper than one per step.
        logits = self.output(self.dropout(torch.stack(hidden, dim=1)))
        return logits, torch.stack(alphas, dim=1)


def attention_penalty(alphas: Tensor, mask: Tensor) -> Tensor:
    """Doubly stochastic regularizer: mean over captions of ``sum_i (1 - sum_t alpha_ti)^2``.

    ``mask`` ``(N, T)`` marks real (non-padding) steps so padded steps add no attention.
    """
    coverage = (alphas.float() * mask.unsqueeze(2)).sum(dim=1)
    return ((1.0 - coverage) ** 2).sum(dim=1).mean()
