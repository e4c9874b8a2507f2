"""Context Sequence Memory Network (Park, Kim, Kim, "Attend to You", CVPR 2017).

CSMN generates a user's hashtags (or post text) one token at a time from a memory of three kinds
of cells. photobatch's personal ranking used its probabilities until measurement showed they add
nothing to it (``models/PERSONALIZER.md``); the personalization benchmark still fits one per
user (``photobatch.training.csmn_head``) to show that:

- image memory: one cell from the photo's pooled EfficientNet-Lite0 vector (the paper: ResNet
  res5c pooled);
- user-context memory: the user's top-D TF-IDF words/hashtags in decreasing score order;
- word-output memory: the tokens generated so far, one cell each.

Each memory has separate input (``a``, attended) and output (``c``, read) embeddings. The query is
``q_t = ReLU(W_q x_t + b_q)`` from the embedding of the previous token, attention is one softmax
over all memory cells, the read-out ``p_t * M_c`` keeps one vector per cell, a CNN over each
memory type (windows 3, 4, 5, max-pooled over cells) turns it into features, then
``h_t = ReLU(W_o c_t + b_o)`` and ``s_t = softmax(W_f h_t + b_f)`` over the vocabulary.

Departures from the paper, and why:

- Empty cells (padding of the context, word-output cells not yet written) are masked out of the
  attention softmax and out of the max-pooling: the reference TensorFlow code lets zero padding
  take attention weight, so a user with a short profile would dilute their real cells.
- A memory shorter than the widest window (the single image cell, the first decoding steps) is
  padded with masked cells so every window size applies; a window with no real cell is excluded
  from the max-pool, and a memory with no real cell at all contributes zeros.
- Sizes suit one person's hundreds of posts instead of 1M posts (see ``CSMNConfig``), with
  dropout on the read-out because the personal data set is tiny.
- The image memory is projected from 1280-d (EfficientNet-Lite0) instead of 2048-d (ResNet-101),
  after L2-normalizing the vector (times sqrt(1280)), and attention scores are divided by
  sqrt(d): the query reaches the output only through the attention weights, so a softmax
  saturated on one large image cell would hide the previous token (seen on a planted habit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


@dataclass(frozen=True)
class CSMNConfig:
    """Model sizes. The paper used 1M posts, a 40K-word vocabulary, 300-d embeddings, D=60 context
    words and 1024-d memories; one user has a few hundred posts and a few hundred distinct tags,
    so the memories shrink to 64-d with 32 filters per window (the whole head is ~0.3M parameters
    for 500 tags: a few hundred posts cannot fit more, and 1,000 posts train in about a minute on
    2 CPU cores), and D to 30, which covers the tags and words a typical user repeats."""

    vocab_size: int
    image_dim: int = 1280
    memory_dim: int = 64
    filters: int = 32  # per window size and memory type
    windows: tuple[int, ...] = (3, 4, 5)
    hidden_dim: int = 128
    context_len: int = 30  # D: user-context cells
    max_len: int = 10  # word-output cells: the longest sequence generated
    dropout: float = 0.25

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CSMNConfig:
        values = dict(data)
        values["windows"] = tuple(values["windows"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


class MemoryCNN(nn.Module):
    """Convolutions over the cells of one memory type (windows 3, 4, 5), masked max-pool."""

    def __init__(self, dim: int, filters: int, windows: tuple[int, ...]) -> None:
        super().__init__()
        self.windows = windows
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in windows)

    def forward(self, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """cells (N, n, d), mask (N, n) bool -> (N, filters * len(windows))."""
        width = max(self.windows)
        if cells.shape[1] < width:
            extra = width - cells.shape[1]
            cells = F.pad(cells, (0, 0, 0, extra))
            mask = F.pad(mask, (0, extra), value=False)
        x = cells.transpose(1, 2)
        pooled = []
        for w, conv in zip(self.windows, self.convs, strict=True):
            y = F.relu(conv(x))  # (N, filters, n - w + 1)
            valid = mask.float().unfold(1, w, 1).amax(dim=2) > 0  # window holds a real cell
            y = y.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=2)
            pooled.append(torch.nan_to_num(y, neginf=0.0))  # memory with no real cell: zeros
        return torch.cat(pooled, dim=1)


class CSMN(nn.Module):
    """The CSMN generator; ``forward`` is teacher-forced, ``greedy``/``beam`` decode."""

    def __init__(self, config: CSMNConfig) -> None:
        super().__init__()
        self.config = config
        d, v = config.memory_dim, config.vocab_size
        self.image_a = nn.Linear(config.image_dim, d)
        self.image_c = nn.Linear(config.image_dim, d)
        self.context_a = nn.Embedding(v, d, padding_idx=PAD)
        self.context_c = nn.Embedding(v, d, padding_idx=PAD)
        self.output_a = nn.Embedding(v, d, padding_idx=PAD)
        self.output_c = nn.Embedding(v, d, padding_idx=PAD)
        self.query_embed = nn.Embedding(v, d, padding_idx=PAD)
        self.query = nn.Linear(d, d)
        self.cnns = nn.ModuleList(MemoryCNN(d, config.filters, config.windows) for _ in range(3))
        self.drop = nn.Dropout(config.dropout)
        self.hidden = nn.Linear(3 * config.filters * len(config.windows), config.hidden_dim)
        self.vocab = nn.Linear(config.hidden_dim, v)

    def memories(
        self, image: torch.Tensor, context: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Attention memory, read memory and cell mask for every step of ``prev``.

        image (B, image_dim), context (B, D) ids with PAD for empty cells, prev (B, T) the
        previous token of each step (BOS first). Step t may read word-output cells of
        ``prev[:, 1 : t + 1]`` (tokens generated before t), so all steps run in parallel.
        Returns m_a, m_c (B, T, cells, d), mask (B, T, cells) and the cell count of each type.
        """
        b, t = prev.shape
        image = F.normalize(image, dim=-1) * math.sqrt(image.shape[-1])
        img_a = F.relu(self.image_a(image)).unsqueeze(1)
        img_c = F.relu(self.image_c(image)).unsqueeze(1)
        ctx_a = F.relu(self.context_a(context))
        ctx_c = F.relu(self.context_c(context))
        written = prev[:, 1:]  # the token emitted at step j is the input of step j + 1
        out_a = F.relu(self.output_a(written))
        out_c = F.relu(self.output_c(written))
        m_a = torch.cat([img_a, ctx_a, out_a], dim=1)
        m_c = torch.cat([img_c, ctx_c, out_c], dim=1)
        n_out = written.shape[1]
        steps = torch.arange(t, device=prev.device).unsqueeze(1)
        causal = torch.arange(n_out, device=prev.device).unsqueeze(0) < steps  # (T, n_out)
        out_mask = causal.unsqueeze(0) & (written != PAD).unsqueeze(1)
        fixed = torch.cat(
            [torch.ones(b, 1, dtype=torch.bool, device=prev.device), context != PAD], dim=1
        )
        mask = torch.cat([fixed.unsqueeze(1).expand(b, t, -1), out_mask], dim=2)
        sizes = [1, context.shape[1], n_out]
        expand = (b, t, *m_a.shape[1:])
        return m_a.unsqueeze(1).expand(expand), m_c.unsqueeze(1).expand(expand), mask, sizes

    def attention(
        self, image: torch.Tensor, context: torch.Tensor, prev: torch.Tensor
    ) -> torch.Tensor:
        """Attention weights (B, T, cells) over [image, context, word-output] cells."""
        return self._attend(image, context, prev)[0]

    def _attend(
        self, image: torch.Tensor, context: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        m_a, m_c, mask, sizes = self.memories(image, context, prev)
        q = F.relu(self.query(self.query_embed(prev)))  # (B, T, d)
        scores = torch.einsum("btnd,btd->btn", m_a, q) / math.sqrt(q.shape[-1])
        p = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=2)
        return p, m_c, mask, sizes

    def forward(
        self, image: torch.Tensor, context: torch.Tensor, prev: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for the token after each of ``prev`` (teacher forcing)."""
        p, m_c, mask, sizes = self._attend(image, context, prev)
        read = p.unsqueeze(-1) * m_c  # (B, T, cells, d): one vector per cell
        b, t, n, d = read.shape
        read, mask = read.reshape(b * t, n, d), mask.reshape(b * t, n)
        feats = []
        start = 0
        for size, cnn in zip(sizes, self.cnns, strict=True):
            feats.append(cnn(read[:, start : start + size], mask[:, start : start + size]))
            start += size
        h = F.relu(self.hidden(self.drop(torch.cat(feats, dim=1))))
        return self.vocab(h).reshape(b, t, -1)

    @torch.no_grad()
    def step_probs(
        self, image: torch.Tensor, context: torch.Tensor, prefix: torch.Tensor
    ) -> torch.Tensor:
        """Next-token distribution (B, vocab) after ``prefix`` (B, t), BOS first."""
        return torch.softmax(self.forward(image, context, prefix)[:, -1], dim=-1)

    @torch.no_grad()
    def beam(
        self,
        image: torch.Tensor,
        context: torch.Tensor,
        beam_size: int = 3,
        max_len: int | None = None,
        unique: bool = True,
        banned: frozenset[int] = frozenset(),
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Decode one example (image (image_dim,), context (D,)); beam_size 1 is greedy.

        ``unique`` forbids any repeated token (no duplicate hashtags); without it (post text)
        only the same word twice in a row is forbidden. Returns the best sequence without BOS/EOS
        and the step distributions along it (used to score tags that were not emitted).
        """
        max_len = max_len or self.config.max_len
        img, ctx = image.unsqueeze(0), context.unsqueeze(0)
        live: list[tuple[float, list[int], list[torch.Tensor]]] = [(0.0, [BOS], [])]
        done: list[tuple[float, list[int], list[torch.Tensor]]] = []
        for _ in range(max_len + 1):
            prefixes = torch.tensor([seq for _, seq, _ in live])
            probs = self.step_probs(img.expand(len(live), -1), ctx.expand(len(live), -1), prefixes)
            candidates = []
            for i, (score, seq, dists) in enumerate(live):
                p = probs[i].clone()
                p[[PAD, BOS, UNK, *banned]] = 0.0
                if unique:
                    p[seq[1:]] = 0.0
                elif len(seq) > 1:
                    p[seq[-1]] = 0.0
                if len(seq) > max_len:
                    p[:] = 0.0
                    p[EOS] = 1.0
                top = torch.topk(p, beam_size)
                for prob, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                    if prob > 0:
                        lp = score + math.log(prob)
                        candidates.append((lp, [*seq, token], [*dists, probs[i]]))
            candidates.sort(key=lambda c: c[0], reverse=True)
            live = []
            for cand in candidates[:beam_size]:
                (done if cand[1][-1] == EOS else live).append(cand)
            if not live:
                break
        best = max(done or live, key=lambda c: c[0] / max(len(c[1]) - 1, 1))
        return [tok for tok in best[1][1:] if tok != EOS], best[2]
