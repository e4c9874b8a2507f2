"""Caption decoding: greedy and beam search, both batched across photos (and beams).

Both apply the same constraints: no ``<end>`` before ``min_length`` words, at most
``max_length`` words, and no trigram repeated within a caption. Beam search ranks finished
captions by ``log p / len ** length_penalty`` (0 = raw log-probability, 1 = per-word average).

Guards against the usual failures of public SAT decoders: a photo whose beams never emit ``<end>``
still gets its best unfinished beam; an empty batch gives an empty list; beam indices come from
integer division, never float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from photobatch.models.nn.sat import DecoderState, ShowAttendTell


@dataclass
class Hypothesis:
    """One decoded caption: word ids (without ``<start>``/``<end>``), attention, score."""

    tokens: list[int]
    attention: Tensor  # (len(tokens), regions), float32 on the CPU
    score: float  # length-normalized log-probability (greedy: plain sum)


@dataclass(frozen=True)
class DecodeOptions:
    """Search settings; the defaults mirror ``CaptionerConfig``."""

    beam_size: int = 5
    max_length: int = 20
    min_length: int = 3
    length_penalty: float = 0.7
    block_trigrams: bool = True


def _constrain(
    logp: Tensor, history: Tensor, end: int, options: DecodeOptions, banned: Sequence[int] = ()
) -> Tensor:
    """Forbid ``<end>`` before ``min_length`` words, any word that would repeat a trigram, and
    the ``banned`` ids (tokens that are not words: ``<pad>``, ``<start>``, ``<unk>``).

    ``history`` ``(B, t)`` holds the words emitted so far (no ``<start>``).
    """
    logp = logp.clone()
    if banned:
        logp[:, list(banned)] = float("-inf")
    t = history.shape[1]
    if t < max(options.min_length, 1):
        logp[:, end] = float("-inf")
    if options.block_trigrams and t >= 3:
        # Earlier positions i where (w_i, w_i+1) equals the last bigram: w_i+2 is banned now.
        repeats = (history[:, :-2] == history[:, -2:-1]) & (history[:, 1:-1] == history[:, -1:])
        banned = torch.zeros_like(logp).scatter_add_(
            1,
            history[:, 2:],
            torch.where(repeats, float("-inf"), 0.0).to(logp.dtype),
        )
        logp = logp + banned
    return logp


@torch.no_grad()
def greedy(
    model: ShowAttendTell,
    feature_map: Tensor,
    start: int,
    end: int,
    options: DecodeOptions = DecodeOptions(),
    banned: Sequence[int] = (),
) -> list[Hypothesis]:
    """Most likely word at every step, for the whole batch at once."""
    n = feature_map.shape[0]
    if n == 0:
        return []
    state = model.start(feature_map)
    words = torch.full((n,), start, dtype=torch.long, device=feature_map.device)
    history = torch.empty((n, 0), dtype=torch.long, device=feature_map.device)
    alphas: list[Tensor] = []
    score = torch.zeros(n, device=feature_map.device)
    done = torch.zeros(n, dtype=torch.bool, device=feature_map.device)
    lengths = torch.full((n,), options.max_length, dtype=torch.long)
    for t in range(options.max_length):
        logp, state, alpha = model.step(words, state)
        logp = _constrain(logp, history, end, options, banned)
        best, words = logp.max(dim=1)
        score = torch.where(done, score, score + best)
        finished_now = (words == end) & ~done
        lengths[finished_now.cpu()] = t
        done |= finished_now
        history = torch.cat([history, words.unsqueeze(1)], dim=1)
        alphas.append(alpha.float())
        if bool(done.all()):
            break
    attention = torch.stack(alphas, dim=1).cpu()
    history = history.cpu()
    return [
        Hypothesis(
            tokens=[int(w) for w in history[i, : lengths[i]]],
            attention=attention[i, : lengths[i]],
            score=float(score[i]),
        )
        for i in range(n)
    ]


@torch.no_grad()
def beam_search(
    model: ShowAttendTell,
    feature_map: Tensor,
    start: int,
    end: int,
    options: DecodeOptions = DecodeOptions(),
    banned: Sequence[int] = (),
    photo_banned: Tensor | None = None,
) -> list[Hypothesis]:
    """Beam search over all photos' beams as one batch of ``N * beam_size`` sequences.

    ``banned`` ids are forbidden for every photo; ``photo_banned`` ``(N, vocab)`` bool, when
    given, forbids more words photo by photo (a mask costs one fill a step, where grouping the
    batch by ban set would split it into several smaller searches).

    At each step the best ``2k`` continuations of a photo's ``k`` beams are taken; those among
    the best ``k`` that end in ``<end>`` become finished captions, the best ``k`` others go on.
    A photo is done once it has ``k`` finished captions and no live beam scores better than the
    worst of them; at ``max_length`` live beams of a photo with no finished caption are finished
    as they are.
    """
    n, k = feature_map.shape[0], max(options.beam_size, 1)
    if n == 0:
        return []
    device = feature_map.device
    state: DecoderState = model.start(feature_map).select(
        torch.arange(n, device=device).repeat_interleave(k)
    )
    words = torch.full((n * k,), start, dtype=torch.long, device=device)
    history = torch.empty((n * k, 0), dtype=torch.long, device=device)
    attention = torch.empty((n * k, 0, state.feats.shape[1]), device=device)
    # Only the first beam of each photo is live at step 0; the others are copies of it.
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    # The photos still searched, in row order: photo photos[i] owns rows i*k .. i*k+k-1. A done
    # photo leaves the batch, so the last steps run on the few long captions only.
    photos = list(range(n))
    if photo_banned is not None:
        photo_banned = photo_banned.to(device=device, dtype=torch.bool)

    def norm(length: int) -> float:
        return float(max(length, 1)) ** options.length_penalty

    for t in range(options.max_length):
        m = len(photos)
        base = (torch.arange(m, device=device) * k).unsqueeze(1)
        logp, state, alpha = model.step(words, state)
        logp = _constrain(logp, history, end, options, banned)
        vocab = logp.shape[1]
        if photo_banned is not None:
            logp = logp.view(m, k, vocab).masked_fill(photo_banned.unsqueeze(1), float("-inf"))
        total = (scores.unsqueeze(2) + logp.view(m, k, vocab)).view(m, k * vocab)
        top_scores, top_ids = total.topk(min(2 * k, k * vocab), dim=1)
        beam_ids = torch.div(top_ids, vocab, rounding_mode="floor")
        word_ids = top_ids % vocab
        attention = torch.cat([attention, alpha.float().unsqueeze(1)], dim=1)

        # Only an <end> ranked within the best k finishes a caption; with k = 1 and no length
        # penalty this makes beam search exactly greedy.
        ends = (word_ids == end) & torch.isfinite(top_scores)
        ends[:, k:] = False
        for i, j in ends.nonzero().tolist():
            row = i * k + int(beam_ids[i, j])
            hyps = finished[photos[i]]
            hyps.append(
                Hypothesis(
                    tokens=[int(w) for w in history[row].tolist()],
                    attention=attention[row, :t].cpu(),
                    score=float(top_scores[i, j]) / norm(t),
                )
            )
            hyps.sort(key=lambda h: -h.score)
            del hyps[k:]
        # An <end> never continues as a live word (at most k of the 2k candidates are <end>).
        live_scores = top_scores.masked_fill(word_ids == end, float("-inf"))
        scores, pick = live_scores.topk(k, dim=1)
        rows = (base + beam_ids.gather(1, pick)).view(-1)
        words = word_ids.gather(1, pick).view(-1)
        history = torch.cat([history[rows], words.unsqueeze(1)], dim=1)
        attention = attention[rows]
        state = state.reorder(rows)
        # Done: k finished captions, and no live beam (normalized at its current length) beats
        # the worst of them. Stopping at the first k finished would let weak beams that end
        # early crowd out the strong beam that is still going.
        best_live = (scores.max(dim=1).values / norm(t + 1)).tolist()
        going = [
            i
            for i, photo in enumerate(photos)
            if len(finished[photo]) < k or best_live[i] > finished[photo][-1].score
        ]
        if not going:
            break
        if len(going) < m:
            photos = [photos[i] for i in going]
            kept = torch.tensor(going, device=device)
            keep_rows = (kept.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            words, history = words[keep_rows], history[keep_rows]
            attention, state, scores = attention[keep_rows], state.select(keep_rows), scores[kept]
            if photo_banned is not None:
                photo_banned = photo_banned[kept]

    history_cpu, attention_cpu, scores_cpu = history.cpu(), attention.cpu(), scores.cpu()
    length = history_cpu.shape[1]
    for i, photo in enumerate(photos):
        if finished[photo]:
            continue
        # No beam finished in time: the live beams, cut at max_length, are the answer (all k
        # of them, so the list is never empty even if every score is -inf).
        for j in range(k):
            row = i * k + j
            finished[photo].append(
                Hypothesis(
                    tokens=[int(w) for w in history_cpu[row].tolist()],
                    attention=attention_cpu[row],
                    score=float(scores_cpu[i, j]) / norm(length),
                )
            )
    return [max(hyps, key=lambda h: h.score) for hyps in finished]
