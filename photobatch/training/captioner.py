"""Train the Show-Attend-Tell captioner on cached encoder features.

Teacher forcing with cross-entropy plus the doubly stochastic attention penalty; Adam; the
learning rate halves when validation BLEU-4 stalls and training stops when it stalls for
``patience`` epochs. The best epoch is saved as a weights-only checkpoint; the full training
state (optimizer, RNG, history) goes to ``<out>.train-state.pt`` after every epoch so an
interrupted run resumes where it stopped and, for the same seed, ends where it would have.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from photobatch.core.text import tokenize
from photobatch.models.captioner import CheckpointError, load_checkpoint, save_checkpoint
from photobatch.models.captions import (
    PAD_ID,
    CaptionDataError,
    CaptionSet,
    Vocabulary,
    read_captions,
    read_splits,
)
from photobatch.models.nn.decoding import DecodeOptions, beam_search
from photobatch.models.nn.sat import SATConfig, ShowAttendTell, attention_penalty
from photobatch.training.features import encode_images
from photobatch.training.metrics import require_scorers, score_captions


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run (saved into the checkpoint's metadata).

    The defaults are the recipe of the shipped model (``models/CAPTIONER.md``), sized for a few
    CPU cores: a 256-unit decoder, an "epoch" of 1,200 random train photos, greedy decoding of
    val after each epoch for model selection.
    """

    feature_dim: int | None = 256
    embed_dim: int = 256
    hidden_dim: int = 256
    attention_dim: int = 256
    dropout: float = 0.5
    batch_size: int = 16  # photos per batch, each with all its captions
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    attention_reg: float = 1.0  # lambda of the doubly stochastic penalty
    grad_clip: float = 5.0
    max_epochs: int = 100
    images_per_epoch: int | None = 1200  # a fresh random subset per epoch (None: all photos)
    patience: int = 8  # epochs without a better val BLEU-4 before stopping
    lr_patience: int = 2  # epochs without a better val BLEU-4 before halving the lr
    min_count: int = 5  # words seen fewer times become <unk>
    max_caption_words: int = 30  # longer training captions are skipped
    seed: int = 0
    val_beam: DecodeOptions = field(default_factory=lambda: DecodeOptions(beam_size=1))
    init: str | None = None  # a checkpoint to start from (fine-tuning): same vocabulary and sizes


@dataclass
class TrainSummary:
    """What a run achieved, for the CLI to print."""

    checkpoint: Path
    best_epoch: int
    epochs_run: int
    val_scores: dict[str, float]
    train_images: int
    val_images: int
    seconds: float


def split_images(data: CaptionSet, splits: Path | None) -> tuple[list[str], list[str]]:
    """Train and val image names: from a splits CSV, the caption JSON, or a fixed 5% hold-out."""
    if splits is not None:
        data.splits = read_splits(splits)
    if data.splits:
        return data.images("train"), data.images("val")
    names = data.images()
    rng = random.Random(0)
    held = set(rng.sample(names, max(1, len(names) // 20)))
    return [n for n in names if n not in held], [n for n in names if n in held]


def encode_captions(
    data: CaptionSet, names: list[str], vocab: Vocabulary, max_words: int
) -> tuple[Tensor, Tensor]:
    """(image index per caption, padded ids ``<start> ... <end>``) for the training captions."""
    owners, seqs = [], []
    for i, name in enumerate(names):
        for text in data.captions[name]:
            words = tokenize(text)
            if 0 < len(words) <= max_words:
                owners.append(i)
                seqs.append(vocab.encode(words))
    ids = torch.full((len(seqs), max(map(len, seqs))), vocab.pad, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
    return torch.tensor(owners), ids


def decode_split(
    model: ShowAttendTell,
    features: Tensor | np.ndarray,
    vocab: Vocabulary,
    options: DecodeOptions,
    device: torch.device,
    batch_size: int = 250,
) -> list[str]:
    """Captions (space-joined words) for every row of a feature array, in batches."""
    model.eval()
    texts = []
    for lo in range(0, len(features), batch_size):
        batch = torch.from_numpy(np.array(features[lo : lo + batch_size])).to(device).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hyps = beam_search(model, batch, vocab.start, vocab.end, options, vocab.non_words)
        texts.extend(" ".join(vocab.decode(h.tokens)) for h in hyps)
    return texts


def train_captioner(
    captions: Path,
    images: Path,
    splits: Path | None,
    out: Path,
    *,
    config: TrainConfig | None = None,
    device: str = "auto",
    cache_dir: Path | None = None,
    resume: bool = True,
    workers: int = 2,
) -> TrainSummary:
    """Train on the ``train`` split, select on ``val`` BLEU-4, write the best model to ``out``."""
    from photobatch.core.config import data_home
    from photobatch.models.encoder import resolve_device

    require_scorers()  # it selects the best epoch: fail now, not after an epoch of training
    cfg = config or TrainConfig()
    dev = torch.device(resolve_device(device))
    began = time.monotonic()
    data = read_captions(captions)
    train_names, val_names = split_images(data, splits)
    if not train_names or not val_names:
        raise CaptionDataError(f"{splits or captions}: need images in both a train and a val split")
    feats = encode_images(
        images,
        train_names + val_names,
        cache_dir or data_home() / "feature-cache",
        dev,
        workers=workers,
    )
    train_feats = torch.from_numpy(np.array(feats[: len(train_names)])).to(dev)  # a copy
    val_feats = feats[len(train_names) :]
    references = {name: data.captions[name] for name in val_names}

    vocab = Vocabulary.build(
        (tokenize(t) for n in train_names for t in data.captions[n]), cfg.min_count
    )
    owners, ids = encode_captions(data, train_names, vocab, cfg.max_caption_words)
    torch.manual_seed(cfg.seed)
    model = ShowAttendTell(
        SATConfig(
            vocab_size=len(vocab),
            encoder_dim=train_feats.shape[1],
            feature_dim=cfg.feature_dim,
            embed_dim=cfg.embed_dim,
            hidden_dim=cfg.hidden_dim,
            attention_dim=cfg.attention_dim,
            dropout=cfg.dropout,
        )
    ).to(dev)
    if cfg.init is not None:
        _start_from(model, vocab, Path(cfg.init))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss(ignore_index=vocab.pad, label_smoothing=cfg.label_smoothing)
    shuffler = torch.Generator().manual_seed(cfg.seed)

    state_path = out.with_name(out.name + ".train-state.pt")
    progress: dict[str, Any] = {
        "epoch": 0,
        "best": -1.0,
        "best_epoch": 0,
        "stale": 0,
        "history": [],
    }
    if resume and state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        if saved["vocab"] != vocab.to_list() or saved["train_config"] != _plain(cfg):
            raise CheckpointError(f"{state_path}: saved state is from a different run; delete it")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        shuffler.set_state(saved["shuffler"])
        torch.set_rng_state(saved["torch_rng"])
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], dev)
        progress = saved["progress"]

    best_scores: dict[str, float] = {}
    for epoch in range(progress["epoch"] + 1, cfg.max_epochs + 1):
        if progress["stale"] >= cfg.patience:
            break
        loss = train_epoch(model, optimizer, loss_fn, train_feats, (owners, ids), cfg, shuffler)
        hyps = decode_split(model, val_feats, vocab, cfg.val_beam, dev)
        scores = score_captions(references, dict(zip(val_names, hyps, strict=True)), meteor=False)
        improved = scores["BLEU-4"] > progress["best"]
        progress["history"].append({"epoch": epoch, "loss": loss, **scores})
        tqdm.write(
            f"epoch {epoch}: cross-entropy {loss:.3f} val BLEU-4 {scores['BLEU-4']:.4f} "
            f"CIDEr {scores['CIDEr']:.4f} lr {optimizer.param_groups[0]['lr']:.2e}"
            + (" (best)" if improved else "")
        )
        if improved:
            progress.update(best=scores["BLEU-4"], best_epoch=epoch, stale=0)
            best_scores = scores
            meta = {
                "epoch": epoch,
                "val": scores,
                "train_config": _plain(cfg),
                "train_images": len(train_names),
                "val_images": len(val_names),
                "captions": captions.name,
            }
            save_checkpoint(out, model, vocab, meta)
        else:
            progress["stale"] += 1
            if progress["stale"] % cfg.lr_patience == 0:
                for group in optimizer.param_groups:
                    group["lr"] /= 2
        progress["epoch"] = epoch
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "shuffler": shuffler.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                "progress": progress,
                "vocab": vocab.to_list(),
                "train_config": _plain(cfg),
            },
            state_path,
        )
    if not best_scores and progress["history"]:
        best = max(progress["history"], key=lambda h: h["BLEU-4"])
        best_scores = {k: v for k, v in best.items() if k not in ("epoch", "loss")}
    return TrainSummary(
        checkpoint=out,
        best_epoch=progress["best_epoch"],
        epochs_run=progress["epoch"],
        val_scores=best_scores,
        train_images=len(train_names),
        val_images=len(val_names),
        seconds=time.monotonic() - began,
    )


def train_epoch(
    model: ShowAttendTell,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    feats: Tensor,
    captions: tuple[Tensor, Tensor],
    cfg: TrainConfig,
    shuffler: torch.Generator,
) -> float:
    """One pass over the training captions ``(image index, padded ids)``; returns the mean
    cross-entropy (the attention penalty is optimized too, but not reported).

    Batches are ``batch_size`` photos with all their captions, so each photo's regions are
    projected and attended once per batch, not once per caption.
    """
    model.train()
    owners, ids = captions
    dev = feats.device
    per_image = [torch.nonzero(owners == i).flatten() for i in range(len(feats))]
    order = torch.randperm(len(feats), generator=shuffler)[: cfg.images_per_epoch]
    total, steps = torch.zeros((), device=dev), 0
    for lo in tqdm(range(0, len(order), cfg.batch_size), desc="training", leave=False):
        images = order[lo : lo + cfg.batch_size]
        rows = torch.cat([per_image[int(i)] for i in images])
        if len(rows) == 0:
            continue
        seqs = ids[rows]
        seqs = seqs[:, : int((seqs != PAD_ID).sum(dim=1).max())].to(dev)
        local = torch.repeat_interleave(
            torch.arange(len(images)), torch.tensor([len(per_image[int(i)]) for i in images])
        )
        maps = feats[images.to(dev)].float()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits, alphas = model(maps, seqs, local.to(dev))
        targets = seqs[:, 1:]
        mask = (targets != PAD_ID).float()
        ce = loss_fn(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss = ce + cfg.attention_reg * attention_penalty(alphas, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total += ce.detach()  # summed on the device: no sync per step
        steps += 1
    return float(total) / max(steps, 1)


def _start_from(model: ShowAttendTell, vocab: Vocabulary, checkpoint: Path) -> None:
    """Copy a checkpoint's weights into ``model``: it must share its vocabulary and sizes."""
    start, start_vocab, _ = load_checkpoint(checkpoint)
    if start_vocab.words != vocab.words:
        raise CheckpointError(
            f"{checkpoint}: trained with another vocabulary ({len(start_vocab)} words, these "
            f"captions give {len(vocab)}); fine-tune on the captions it was trained on"
        )
    if start.config != model.config:
        raise CheckpointError(
            f"{checkpoint}: its sizes {start.config.to_dict()} differ from the ones asked for "
            f"{model.config.to_dict()}"
        )
    model.load_state_dict(start.state_dict())


def _plain(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain values (weights-only checkpoints hold no dataclasses)."""
    return asdict(cfg)
