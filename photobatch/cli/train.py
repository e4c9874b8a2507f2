"""`photobatch train` and `photobatch build-prior`: the models a user can (re)build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from photobatch.cli.base import DEVICE, Context, caption_data, cli, pass_context, warn


@cli.command("build-prior")
@click.option(
    "--harrison",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the HARRISON dataset (tag_list.txt, data_list.txt).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the prior (.npz; a .json beside it).",
)
def build_prior(harrison: Path, output: Path) -> None:
    """Rebuild the Instagram hashtag prior shipped in models/ from the HARRISON hashtag lists."""
    from photobatch.models.prior import main_build

    click.echo(main_build(harrison, output))


@cli.group()
def train() -> None:
    """Train a model: the captioner, the grounding heads, or your personal hashtag ranking."""


@train.command("personalizer")
@pass_context
def train_personalizer(obj: Context) -> None:
    """Learn your hashtag habits from the imported Instagram posts.

    The ranking is stored in the index's own folder (index.db -> index.db.personal/); the next
    scan re-ranks every photo's hashtags with it and drafts a post from your own text of your
    most similar earlier photo. It takes a second or two. It needs at least 10 posts with
    hashtags; an export without its photos trains on your text habits. Without imported
    posts, hashtags stay generic.
    """
    from photobatch.training.personalizer import train_personalizer

    with obj.index() as index:
        click.echo(train_personalizer(index, obj.config.personalizer_path))


@train.command("captioner")
@caption_data
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the best model goes (default: captioner.pt in photobatch's data folder).",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fine-tune: start from this checkpoint's weights (same captions' vocabulary and sizes).",
)
@click.option("--max-epochs", type=click.IntRange(min=1), help="Stop after this many epochs.")
@click.option(
    "--images-per-epoch",
    type=click.IntRange(min=0),
    help="Random train photos per epoch (default 1200; 0: all of them, every epoch).",
)
@click.option("--hidden-dim", type=click.IntRange(min=8), help="LSTM size (default 256).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam's learning rate.")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--restart", is_flag=True, help="Start over instead of resuming a stopped run.")
@pass_context
def train_captioner(
    obj: Context,
    captions: Path,
    images: Path,
    splits: Path | None,
    device: str,
    cache: Path | None,
    output: Path | None,
    restart: bool,
    **overrides: Any,
) -> None:
    """Train a Show-Attend-Tell captioner; the epoch with the best val BLEU-4 is kept.

    Encoder features are computed once and cached; an interrupted run resumes where it stopped.
    The defaults reproduce the model shipped in models/ (see models/CAPTIONER.md).
    """
    from photobatch.training.captioner import TrainConfig, train_captioner
    from photobatch.training.metrics import format_scores

    changed = {key: value for key, value in overrides.items() if value is not None}
    if changed.get("images_per_epoch") == 0:
        changed["images_per_epoch"] = None
    if "init" in changed:
        changed["init"] = str(changed["init"].absolute())
    from photobatch.core.config import data_home

    out = output or data_home() / "captioner.pt"  # a shared model, not one index's state
    summary = train_captioner(
        captions,
        images,
        splits,
        out,
        config=TrainConfig(**changed),
        device=device,
        cache_dir=cache,
        resume=not restart,
    )
    click.echo(
        f"best epoch {summary.best_epoch} of {summary.epochs_run} "
        f"({summary.train_images} train, {summary.val_images} val photos, "
        f"{summary.seconds / 60:.1f} min); val, greedy:\n{format_scores(summary.val_scores)}\n"
        f"saved {out}; to caption with it, set 'captioner: {{model: {out}}}' in the config"
    )


@train.command("grounding")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder laid out like the shared data: flickr8k/ (captions.csv, splits.csv, images/), "
    "broad/imagenet, broad/scenes (labels.csv and photos), broad/coco-dev (captions.csv and "
    "photos) and chair/synonyms.txt.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the heads go (default: grounding.npz in photobatch's data folder).",
)
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where encoder features are cached (default: photobatch's data folder).",
)
@pass_context
def train_grounding(
    obj: Context, data: Path, output: Path | None, device: str, cache: Path | None
) -> None:
    """Fit the grounding heads (person, dog, 25 scenes, COCO's objects) on the encoder's
    embeddings, and calibrate the captions' confidence on photos the heads never saw.

    Captions Flickr8k val and coco-dev with the configured captioner to calibrate. Deterministic:
    the same data gives the same file. The defaults reproduce models/grounding.npz (see
    models/GROUNDING.md).
    """
    from photobatch.core.config import data_home
    from photobatch.models.captioner import Captioner
    from photobatch.models.encoder import resolve_device
    from photobatch.training.features import classify_features, encode_images
    from photobatch.training.grounding import Embedded, train_grounding

    dev = resolve_device(device)
    cache_dir = cache or data_home() / "feature-cache"

    def embed(folder: Path, names: list[str]) -> Embedded:
        maps = encode_images(folder, names, cache_dir, dev)
        pooled, logits = classify_features(maps, dev)
        return Embedded(names, pooled, logits, maps)

    out = output or data_home() / "grounding.npz"
    click.echo(train_grounding(data, out, embed, Captioner(dev, obj.config.captioner), warn))
    click.echo(f"to use it, set 'grounding: {{model: {out}}}' in the config")
