"""Caption metrics: hand-checked values on tiny examples, and agreement with pycocoevalcap."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from photobatch.training.metrics import format_scores, score_captions

REFS = {
    "a.jpg": ["A dog runs through the grass .", "A brown dog is running on grass ."],
    "b.jpg": ["Two children play in the sand .", "Kids playing on a beach ."],
    "c.jpg": ["A man rides a red bike down the street .", "A cyclist on a city street ."],
}
PINNED = {"BLEU-1": 0.945959, "BLEU-4": 0.354635, "ROUGE-L": 0.671295, "CIDEr": 2.226532}
HYPS = {
    "a.jpg": "A dog is running through the grass",
    "b.jpg": "Two kids play on the beach",
    "c.jpg": "A man rides a bike",
}


def test_identical_caption_scores_one() -> None:
    scores = score_captions({"x": ["a dog runs on the grass"]}, {"x": "A dog runs on the grass."})
    for n in range(1, 5):
        assert scores[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)


def test_hand_computed_bleu_1_and_rouge_l() -> None:
    """Hypothesis 'a dog runs' against 'a dog runs fast'.

    BLEU-1: precision 3/3, brevity penalty exp(1 - 4/3). ROUGE-L: LCS 3, precision 1, recall
    3/4, F with beta 1.2: (1 + b^2) P R / (R + b^2 P).
    """
    scores = score_captions({"x": ["a dog runs fast"]}, {"x": "a dog runs"}, meteor=False)
    assert scores["BLEU-1"] == pytest.approx(math.exp(1 - 4 / 3), abs=1e-6)
    assert scores["BLEU-2"] == pytest.approx(math.exp(1 - 4 / 3), abs=1e-6)  # 2/2 bigrams match
    beta2 = 1.2**2
    assert scores["ROUGE-L"] == pytest.approx((1 + beta2) * 0.75 / (0.75 + beta2), abs=1e-6)


def test_pinned_scores_on_a_fixed_example() -> None:
    """Values computed once with pycocoevalcap 1.2; a change means the metric code changed."""
    scores = score_captions(REFS, HYPS, meteor=False)
    assert scores["BLEU-1"] == pytest.approx(PINNED["BLEU-1"], abs=1e-4)
    assert scores["BLEU-4"] == pytest.approx(PINNED["BLEU-4"], abs=1e-4)
    assert scores["ROUGE-L"] == pytest.approx(PINNED["ROUGE-L"], abs=1e-4)
    assert scores["CIDEr"] == pytest.approx(PINNED["CIDEr"], abs=1e-4)


def test_matches_pycocoevalcap_called_directly() -> None:
    """Same numbers as the reference scorers fed the lower-cased, punctuation-free text."""
    gts = {k: [r.lower().replace(" .", "") for r in v] for k, v in REFS.items()}
    res = {k: [v.lower()] for k, v in HYPS.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = score_captions(REFS, HYPS, meteor=False)
    assert [scores[f"BLEU-{n}"] for n in range(1, 5)] == pytest.approx(bleu)
    assert scores["ROUGE-L"] == pytest.approx(rouge)
    assert scores["CIDEr"] == pytest.approx(cider)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_when_java_is_present() -> None:
    scores = score_captions(REFS, HYPS, meteor=True)
    assert 0.0 < scores["METEOR"] < 1.0
    assert "METEOR" in format_scores(scores)


def test_mismatched_or_empty_inputs_are_errors() -> None:
    with pytest.raises(ValueError):
        score_captions({"a": ["x"]}, {"b": "x"})
    with pytest.raises(ValueError):
        score_captions({}, {})


def test_evaluate_without_splits_scores_only_the_held_out_five_percent(
    research_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring every photo would score the photos the model was trained on."""
    from photobatch.models.captions import read_captions
    from photobatch.research import evaluation
    from photobatch.training.captioner import split_images

    flickr = research_data / "flickr8k"
    lines = (flickr / "captions.csv").read_text(encoding="utf-8").splitlines()
    captions = tmp_path / "captions.csv"
    captions.write_text("\n".join(lines[:201]) + "\n", encoding="utf-8")  # 40 photos
    scored: set[str] = set()

    def spy(refs: dict[str, list[str]], hyps: dict[str, str], **options: bool) -> dict[str, float]:
        scored.update(refs)
        return score_captions(refs, hyps, **options)

    monkeypatch.setattr(evaluation, "score_captions", spy)
    evaluation.evaluate_captioner(
        captions, flickr / "images", None, device="cpu", cache_dir=tmp_path / "cache"
    )
    held_out = split_images(read_captions(captions), None)[1]
    assert scored == set(held_out) and len(held_out) == 2
