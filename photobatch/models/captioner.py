"""The runtime captioner: a ``Model`` that loads a Show-Attend-Tell checkpoint and captions maps.

Importing this module does not import torch: that waits for the first checkpoint read.

A checkpoint is a plain dict (tensors, numbers, strings, lists) so it loads with
``torch.load(..., weights_only=True)``: nothing in it can run code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photobatch.core.config import CaptionerConfig
from photobatch.core.errors import UserError
from photobatch.models.base import Model
from photobatch.models.captions import SPECIALS, Vocabulary
from photobatch.weights import shipped

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from photobatch.models.nn.decoding import DecodeOptions
    from photobatch.models.nn.sat import ShowAttendTell

SHIPPED_MODEL = "captioner.pt"
CHECKPOINT_FORMAT = 1


def shipped_model_path() -> Path:
    """The model committed in the repo's ``models/`` folder (package ``photobatch.weights``)."""
    return shipped(SHIPPED_MODEL)


def save_checkpoint(
    path: Path, model: ShowAttendTell, vocab: Vocabulary, meta: dict[str, Any]
) -> None:
    """Write weights (float16, to keep the file small), vocabulary, sizes and ``meta``."""
    import torch

    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "vocab": vocab.to_list(),
        "state_dict": state,
        "meta": meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


class CheckpointError(UserError, ValueError):
    """A captioner checkpoint that cannot be used; the message names the file and why."""


def load_checkpoint(
    path: Path, device: str | torch.device = "cpu"
) -> tuple[ShowAttendTell, Vocabulary, dict[str, Any]]:
    """Rebuild the model (float32, eval mode) and vocabulary from a checkpoint."""
    import torch

    from photobatch.models.nn.sat import SATConfig, ShowAttendTell

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, truncated, or not a torch file: all unusable alike
        raise CheckpointError(
            f"{path}: cannot read this captioner checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a photobatch captioner checkpoint (format {CHECKPOINT_FORMAT})"
        )
    model = ShowAttendTell(SATConfig(**payload["config"]))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    return model.to(device).eval(), Vocabulary(payload["vocab"]), payload.get("meta", {})


@dataclass
class CaptionResult:
    """A caption, its words, and where the model looked for each word."""

    text: str
    tokens: list[str]
    attention: Tensor  # (len(tokens), 49): attention over the 7x7 regions, row-major
    score: float = 0.0  # beam log-probability per word (length-normalised)


class Captioner(Model):
    """Captions batches of encoder feature maps with the configured checkpoint and beam search."""

    name = "sat"

    def __init__(
        self, device: str | torch.device = "cpu", config: CaptionerConfig | None = None
    ) -> None:
        super().__init__()
        self.device_name = str(device)
        self.config = config or CaptionerConfig()
        self.path = self.config.model or shipped_model_path()
        self.model: ShowAttendTell | None = None
        self.vocab: Vocabulary | None = None

    @property
    def device(self) -> torch.device:
        from photobatch.models.encoder import resolve_device

        return resolve_device(self.device_name)

    def files(self) -> tuple[Path, ...]:
        return (self.path,)

    def settings(self) -> dict[str, object]:
        c = self.config
        return {
            "beam_size": c.beam_size,
            "max_length": c.max_length,
            "min_length": c.min_length,
            "length_penalty": c.length_penalty,
        }

    @property
    def options(self) -> DecodeOptions:
        from photobatch.models.nn.decoding import DecodeOptions

        return DecodeOptions(**self.settings())  # type: ignore[arg-type]

    def _load(self) -> None:
        self.model, self.vocab, _ = load_checkpoint(self.path, self.device)

    def caption(
        self, feature_maps: Tensor, banned: Sequence[Collection[str]] | None = None
    ) -> list[CaptionResult]:
        """Caption ``(N, 1280, 7, 7)`` feature maps with beam search, all photos at once.

        ``banned[i]``: words photo ``i``'s caption may not contain (grounding's bans).
        """
        import torch

        from photobatch.models.nn.decoding import beam_search

        self.load()
        assert self.model is not None and self.vocab is not None
        device = self.device
        feats = feature_maps.to(device, torch.float32)
        photo_banned = None
        if banned is not None:
            ids = self.vocab.index
            photo_banned = torch.zeros(len(banned), len(self.vocab.words), dtype=torch.bool)
            for row, words in enumerate(banned):
                photo_banned[row, [ids[w] for w in words if w in ids]] = True
        # Mixed precision on CUDA only: bfloat16 keeps float32's range, so no loss scaling.
        with torch.autocast(
            device_type=device.type,
            dtype=torch.bfloat16,
            enabled=device.type == "cuda",
        ):
            hyps = beam_search(
                self.model,
                feats,
                self.vocab.start,
                self.vocab.end,
                self.options,
                banned=self.vocab.non_words,
                photo_banned=photo_banned,
            )
        results = []
        for hyp in hyps:
            # Special tokens (<unk>) are dropped from the text, and their attention rows with them.
            keep = [i for i, t in enumerate(hyp.tokens) if t >= len(SPECIALS)]
            words = [self.vocab.words[hyp.tokens[i]] for i in keep]
            results.append(CaptionResult(sentence(words), words, hyp.attention[keep], hyp.score))
        return results


def sentence(words: list[str]) -> str:
    """``['a', 'dog', 'runs']`` -> ``'A dog runs.'`` (empty for no words)."""
    if not words:
        return ""
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."
