"""Calibrating a caption's confidence: the probability that it invents no object.

``photobatch train grounding`` captions photos its heads never trained on (Flickr8k val and
``broad/coco-dev``) exactly as a scan does, labels each caption by CHAIR (does it name an object
that no reference mentions?) and fits a logistic model of the caption's reliability features
(``Grounding.reliability_features``). Ten-fold cross-validation says, set by set and on captions
each fold did not fit, how well the confidence ranks right captions above wrong ones (AUROC) and
how close it is to the observed rate (expected calibration error). The *describe point* is the
lowest confidence, in steps of 0.05, at which the cross-validated captions that reach it are right
at least ``PRECISION`` of the time in every set: sidecars write a caption as a description from
there (``sidecars.min_caption_confidence``), and hashtags take words from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from photobatch.models.grounding import FEATURES, Decision, Evidence, Grounding
from photobatch.training.chair import ChairVocabulary, invented
from photobatch.training.metrics import auroc, expected_calibration_error

PRECISION = 0.9  # written descriptions must be right at least this often
FOLDS = 10
L2 = 1e-2
POINTS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # the describe points considered
DIGITS = 4  # coefficients are rounded, so a rerun that differs in the last float bits gives
#             the same file


@dataclass
class CaptionedSet:
    """One calibration set as a scan captions it: every photo's decision, and for each captioned
    photo its reliability features and whether the caption invents no object."""

    name: str
    decisions: list[Decision]
    features: np.ndarray  # (captioned, len(FEATURES))
    right: np.ndarray  # (captioned,) bool: names no object its references leave out

    @property
    def photos(self) -> int:
        return len(self.decisions)


def captioned_set(
    name: str,
    grounding: Grounding,
    grounded: Sequence[tuple[Evidence, Decision]],
    references: Sequence[Sequence[str]],
    vocab: ChairVocabulary,
) -> CaptionedSet:
    """Features and CHAIR labels of the captions ``grounding.caption`` gave these photos."""
    features, right = [], []
    for (ev, d), refs in zip(grounded, references, strict=True):
        if d.caption:
            features.append(
                grounding.reliability_features(ev, d.caption, d.source, d.support, d.score)
            )
            right.append(not invented(vocab, refs, d.caption))
    return CaptionedSet(
        name,
        [d for _, d in grounded],
        np.array(features, np.float64).reshape(-1, len(FEATURES)),
        np.array(right, bool),
    )


def fit_calibration(x: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Logistic regression of ``right`` on standardised ``x`` (L2 1e-2, full-batch L-BFGS from
    zero); returns weights for the raw features and the bias, ``(F + 1,)``, rounded."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    X = torch.from_numpy(((x - mu) / sd).astype(np.float32))
    y = torch.from_numpy(right.astype(np.float32))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, y)
        loss = loss + L2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weights = w.detach().numpy().astype(np.float64) / sd
    bias = float(b.detach()) - float((weights * mu).sum())
    return np.round(np.append(weights, bias), DIGITS)


def confidence(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The calibrated probabilities of features ``x`` (as ``Grounding`` computes them)."""
    return 1.0 / (1.0 + np.exp(-(x @ coefficients[:-1] + coefficients[-1])))


def cross_validated(sets: Sequence[CaptionedSet]) -> list[np.ndarray]:
    """Each set's captions' confidence from a model fitted on the other nine tenths of all
    sets' captions (folds by position, every tenth caption)."""
    x = np.concatenate([s.features for s in sets])
    y = np.concatenate([s.right for s in sets])
    fold = np.arange(len(y)) % FOLDS
    out = np.zeros(len(y))
    for f in range(FOLDS):
        out[fold == f] = confidence(fit_calibration(x[fold != f], y[fold != f]), x[fold == f])
    return np.split(out, np.cumsum([len(s.right) for s in sets])[:-1])


def passing(s: CaptionedSet, p: np.ndarray, point: float) -> tuple[float, float]:
    """(share of the set's photos whose caption reaches ``point``, share of those captions that
    invent an object): coverage and CHAIRs of the descriptions sidecars write."""
    written = p >= point
    wrong = float((~s.right[written]).mean()) if written.any() else 0.0
    return float(written.sum()) / max(s.photos, 1), wrong


def describe_point(sets: Sequence[CaptionedSet], probabilities: Sequence[np.ndarray]) -> float:
    """The lowest point of ``POINTS`` at which the passing captions of every set are right at
    least ``PRECISION`` of the time (the highest point when none is)."""
    for point in POINTS:
        if all(
            1 - passing(s, p, point)[1] >= PRECISION
            for s, p in zip(sets, probabilities, strict=True)
        ):
            return float(point)
    return float(POINTS[-1])


def calibrate(
    sets: Sequence[CaptionedSet], log: Callable[[str], None] = lambda _: None
) -> tuple[np.ndarray, float, str]:
    """Fit the calibration on all sets, choose the describe point on cross-validated
    confidences, and report both per set: (coefficients, point, report)."""
    cv = cross_validated(sets)
    point = describe_point(sets, cv)
    coefficients = fit_calibration(
        np.concatenate([s.features for s in sets]), np.concatenate([s.right for s in sets])
    )
    lines = [f"caption confidence, cross-validated ({FOLDS} folds); describe point {point:.2f}:"]
    for s, p in zip(sets, cv, strict=True):
        covered, wrong = passing(s, p, point)
        lines.append(
            f"  {s.name}: {len(s.right)} of {s.photos} photos captioned, "
            f"{(~s.right).mean():.3f} invent an object; AUROC {auroc(s.right, p):.3f}, "
            f"ECE {expected_calibration_error(s.right, p):.3f}; at {point:.2f}: coverage "
            f"{covered:.3f}, CHAIRs {wrong:.3f}"
        )
    report = "\n".join(lines)
    log(report)
    return coefficients, point, report
