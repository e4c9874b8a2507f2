"""``photobatch evaluate captioner``: caption a held-out split as a scan would, and score it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from photobatch.core.config import CaptionerConfig
from photobatch.training.metrics import require_scorers, score_captions


def evaluate_captioner(
    captions: Path,
    images: Path,
    splits: Path | None,
    model: Path | None = None,
    split: str = "val",
    device: str = "auto",
    cache_dir: Path | None = None,
    config: CaptionerConfig | None = None,
) -> dict[str, float]:
    """Caption one split's photos with a checkpoint (default: the shipped one) and score them.

    Beam settings come from ``config`` (default ``CaptionerConfig()``), as in a scan; features go
    through the same encoder and feature cache as training.
    """
    import torch

    from photobatch.core.config import data_home
    from photobatch.models.captioner import Captioner
    from photobatch.models.captions import CaptionDataError, read_captions, read_splits
    from photobatch.models.encoder import resolve_device
    from photobatch.training.captioner import split_images
    from photobatch.training.features import encode_images

    require_scorers()  # before the photos are encoded and captioned
    data = read_captions(captions)
    if splits is not None:
        data.splits = read_splits(splits)
    if data.splits:
        names = data.images(split)
    else:  # the very 5% hold-out that training kept out, not every photo
        train, val = split_images(data, None)
        names = {"train": train, "val": val}.get(split, [])
    if not names:
        raise CaptionDataError(f"{splits or captions}: no images in split '{split}'")
    dev = resolve_device(device)
    feats = encode_images(images, names, cache_dir or data_home() / "feature-cache", dev)
    captioner = Captioner(dev, replace(config or CaptionerConfig(), model=model))
    hypotheses: dict[str, str] = {}
    for lo in range(0, len(names), 100):
        batch = torch.from_numpy(feats[lo : lo + 100].astype("float32"))
        for name, result in zip(names[lo : lo + 100], captioner.caption(batch), strict=True):
            hypotheses[name] = result.text
    return score_captions({n: data.captions[n] for n in names}, hypotheses)
