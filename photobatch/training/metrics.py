"""Caption metrics with the reference COCO scorers (pycocoevalcap), called one by one.

BLEU-1..4, ROUGE-L and CIDEr are pure Python. METEOR runs a Java jar, so it is scored only when
``java`` is on PATH. SPICE is never used: it downloads models at first use. Captions are tokenized
with :func:`photobatch.core.text.tokenize` instead of the PTB tokenizer (Java), so
hypotheses and references always go through the same, simple tokenization. Training selects its
best epoch with them and ``photobatch evaluate captioner`` reports them. pycocoevalcap comes with
the ``research`` extra; without it :func:`require_scorers` raises ``MissingExtra``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence

from photobatch.core.errors import MissingExtra
from photobatch.core.text import tokenize

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr", "METEOR")


def require_scorers() -> None:
    """Raise ``MissingExtra`` unless pycocoevalcap imports: called before any slow work starts."""
    try:
        import pycocoevalcap.bleu.bleu  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("research", "pycocoevalcap") from exc


def score_captions(
    references: Mapping[str, Sequence[str]],
    hypotheses: Mapping[str, str],
    meteor: bool | None = None,
) -> dict[str, float]:
    """Corpus scores of one hypothesis per image against its references.

    ``meteor=None`` scores METEOR when Java is available; True insists, False skips it.
    """
    require_scorers()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(hypotheses):
        raise ValueError("references and hypotheses must cover the same images")
    if not hypotheses:
        raise ValueError("no captions to score")
    gts = {key: [" ".join(tokenize(r)) for r in refs] for key, refs in references.items()}
    res = {key: [" ".join(tokenize(hyp))] for key, hyp in hypotheses.items()}

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores["ROUGE-L"] = float(rouge)
    scores["CIDEr"] = float(cider)
    if meteor is None:
        meteor = shutil.which("java") is not None
    if meteor:
        scores["METEOR"] = _meteor(gts, res)
    return scores


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:
        # Stop the Java process now rather than whenever the scorer is garbage collected.
        scorer.meteor_p.stdin.close()
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
    return float(score)


def format_scores(scores: Mapping[str, float]) -> str:
    """One ``NAME value`` line per metric, in the usual order."""
    return "\n".join(f"{name:8s} {scores[name]:.4f}" for name in METRICS if name in scores)


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative, ties counting half (Mann-Whitney U). NaN when one class is missing."""
    import numpy as np

    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # ties share their mean rank
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def expected_calibration_error(
    labels: Sequence[bool], probabilities: Sequence[float], bins: int = 10
) -> float:
    """Mean |observed rate - predicted probability| over ``bins`` equal-width probability bins,
    weighted by how many predictions fall in each (Guo et al. 2017)."""
    import numpy as np

    y = np.asarray(labels, np.float64)
    p = np.asarray(probabilities, np.float64)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(
        sum(
            (which == b).sum() / len(p) * abs(y[which == b].mean() - p[which == b].mean())
            for b in range(bins)
            if (which == b).any()
        )
    )
