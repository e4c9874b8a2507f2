"""The model shipped in models/: loads safely, fits the size budget, and captions real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from photobatch.models.captioner import Captioner, shipped_model_path

# A val photo (never trained on) whose five human captions all say "dog".
DOG_PHOTO = "1026685415_0431cbf574.jpg"
VAL_BLEU4 = 0.2058  # models/CAPTIONER.md, beam 5 with the CaptionerConfig defaults
GROUNDED_VAL_BLEU4 = 0.20  # the captions a scan writes (grounding on): models/GROUNDING.md


def test_shipped_checkpoint_is_weights_only_and_small() -> None:
    path = shipped_model_path()
    assert path.is_file(), f"shipped model missing at {path}"
    assert path.stat().st_size <= 30 * 1024 * 1024
    payload = torch.load(path, weights_only=True)
    assert payload["vocab"][:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert payload["meta"]["val"]["BLEU-4"] > 0


def test_shipped_model_captions_a_val_dog_photo_with_dog(research_data: Path) -> None:
    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.encoder import ImageEncoder

    photo = research_data / "flickr8k" / "images" / DOG_PHOTO
    encoder = ImageEncoder("cpu")
    encoder.load()
    feature_map = encoder.encode(to_tensor(load_image(photo)).unsqueeze(0)).feature_map
    captioner = Captioner("cpu")
    result = captioner.caption(feature_map)[0]
    assert "dog" in result.tokens, result.text
    assert result.attention.shape == (len(result.tokens), 49)
    torch.testing.assert_close(result.attention.sum(dim=1), torch.ones(len(result.tokens)))


@pytest.mark.slow
def test_shipped_model_val_bleu(research_data: Path, tmp_path: Path) -> None:
    """The full val evaluation reproduces the model cards (minutes on a CPU): the captioner
    alone, and the grounded captions a scan writes, which must stay at 0.20 or above."""
    from photobatch.research.evaluation import evaluate_captioner

    root = research_data / "flickr8k"
    data = (root / "captions.csv", root / "images", root / "splits.csv")
    raw = evaluate_captioner(*data, cache_dir=tmp_path, raw=True)
    assert raw.scores["BLEU-4"] == pytest.approx(VAL_BLEU4, abs=0.002)
    grounded = evaluate_captioner(*data, cache_dir=tmp_path)
    assert grounded.scores["BLEU-4"] >= GROUNDED_VAL_BLEU4
