"""`photobatch evaluate` and `photobatch bench`: measurements (the ``research`` extra)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from photobatch.cli.base import (
    DEVICE,
    Context,
    caption_data,
    caption_files,
    cli,
    pass_context,
    warn,
)
from photobatch.core.errors import UserError


@cli.group()
def evaluate() -> None:
    """Measure a model on held-out data and print the metrics."""


@evaluate.command("captioner")
@caption_data
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint from 'train captioner' (default: the config's, else the shipped one).",
)
@click.option(
    "--split",
    default="val",
    show_default=True,
    help="Which split to caption; 'all' for every photo of a test set of its own.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Score the captioner alone, without grounding (the model card's figures).",
)
@click.option(
    "--synonyms",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CHAIR's object synonyms file (default: chair/synonyms.txt in $PHOTOBATCH_DATA, else in "
    "../shared/data beside the checkout).",
)
@pass_context
def evaluate_captioner(
    obj: Context,
    captions: Path,
    images: Path,
    splits: Path | None,
    device: str,
    cache: Path | None,
    model: Path | None,
    split: str,
    raw: bool,
    synonyms: Path | None,
) -> None:
    """BLEU-1..4, ROUGE-L, CIDEr (and METEOR when Java is installed), the hallucination rate,
    CHAIR, and how well the captions' confidence predicts it.

    Captions one split (every photo when there are no splits) as a scan does, grounding
    included, and scores them against the human captions with the pycocoevalcap scorers. The
    hallucination rate is the share of photos with no person or dog in any reference whose
    caption names one. CHAIRs is the share of captions naming one of COCO's objects that no
    reference mentions, CHAIRi the share of named objects; then the photos that get a sidecar
    description (confidence at least sidecars.min_caption_confidence), their CHAIRs and CIDEr,
    and the AUROC and calibration error of the confidence for "invents no object".
    """
    from photobatch.research.evaluation import evaluate_captioner

    result = evaluate_captioner(
        captions,
        images,
        splits,
        model=model or obj.config.captioner.model,
        split=split,
        device=device,
        cache_dir=cache,
        config=obj.config,
        raw=raw,
        synonyms=synonyms,
    )
    click.echo(result.report())


@evaluate.command("hashtags")
@click.option(
    "--tags",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV of human tags: image,tags rows (tags separated by spaces, commas or #).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The folder holding the photos the CSV names.",
)
@click.option(
    "--column",
    default="tags",
    show_default=True,
    help="Read the human tags from this column instead; any column but 'tags' holds one tag a "
    "cell (e.g. 'scene' of broad/scenes/labels.csv).",
)
@click.option("--device", type=DEVICE, help="Where the models run (default from config).")
@pass_context
def evaluate_hashtags(
    obj: Context, tags: Path, images: Path, column: str, device: str | None
) -> None:
    """P@5, R@5 and hit@5 of the hashtags a scan gives against human tags.

    Scans the listed photos as 'photobatch scan' would (without the personal head) and compares
    each photo's top 5 hashtags with its human tags, normalized as hashtags are.
    """
    from photobatch.research.evaluation import evaluate_hashtags

    result = evaluate_hashtags(tags, images, obj.config, device or obj.config.device, column)
    click.echo(result.report())


@evaluate.command("search")
@caption_files
@click.option("--split", default="all", show_default=True, help="Which split to search.")
@click.option(
    "--words",
    help="Comma-separated words to search, each one of COCO's objects (default: "
    "person,dog,cat,car,bus,train,pizza,bed,laptop,chair).",
)
@click.option(
    "--synonyms",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CHAIR's object synonyms file (default: chair/synonyms.txt in the research data).",
)
@click.option("--device", type=DEVICE, help="Where the models run (default from config).")
@pass_context
def evaluate_search(
    obj: Context,
    captions: Path,
    images: Path,
    splits: Path | None,
    split: str,
    words: str | None,
    synonyms: Path | None,
    device: str | None,
) -> None:
    """Precision and recall of 'photobatch search WORD' for everyday object words.

    Scans the photos into a new, temporary index as 'photobatch scan' does, searches each word
    and counts every result: a photo is relevant when one of its human captions names the word's
    object (CHAIR's synonyms: 'puppy' is a dog, 'hot dog' is not).
    """
    from photobatch.research.evaluation import SEARCH_WORDS, evaluate_search

    chosen = tuple(w.strip() for w in words.split(",") if w.strip()) if words else SEARCH_WORDS
    result = evaluate_search(
        captions,
        images,
        obj.config,
        device or obj.config.device,
        chosen,
        splits,
        split,
        synonyms,
    )
    click.echo(result.report())


@evaluate.command("personalizer")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config).",
)
@click.option(
    "--benchmark",
    is_flag=True,
    help="Instead of your posts, run the multi-user benchmark built from the research data "
    "(photos no shipped model trained on: Flickr8k val, broad/coco-dev and the held-out "
    "quarter of broad/scenes; HARRISON hashtags) in $PHOTOBATCH_DATA, else in ../shared/data "
    "beside the checkout.",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --benchmark: where the photos' embeddings and scan candidates (computed on the CPU) "
    "are cached (default: photobatch's data folder).",
)
@click.option(
    "--users",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="With --benchmark: steady users per half of the photos (a namer, a sparse tagger and "
    "a single-topic user come on top).",
)
@click.option(
    "--posts",
    "histories",
    type=click.IntRange(min=20, max=200),
    multiple=True,
    default=(30, 50, 160),
    show_default=True,
    help="With --benchmark: history sizes (past posts per user); repeatable. The unseen photos "
    "allow up to 200.",
)
@pass_context
def evaluate_personalizer(
    obj: Context,
    device: str | None,
    benchmark: bool,
    cache: Path | None,
    users: int,
    histories: tuple[int, ...],
) -> None:
    """P/R/F1@K of personal hashtags against baselines, on your latest 20% of posts.

    Builds the ranking from the earlier posts (by time) and compares it on the latest 20% of the
    posts with a photo with the non-personalized pipeline, your K most frequent tags, the tags of
    the most similar earlier photo (1NN) and a similarity-weighted vote of your 10 most similar
    earlier photos.
    """
    from photobatch.models.stack import model_set
    from photobatch.research.data import research_data
    from photobatch.research.personal import evaluate_personalizer, run_benchmark

    if benchmark:
        from photobatch.core.config import data_home

        cache = cache or data_home() / "benchmark-cache"  # beside the feature cache: shared
        click.echo(
            run_benchmark(
                research_data(), cache, steady_users=users, histories=histories, config=obj.config
            )
        )
        return

    with obj.index(create=False) as index:
        posts = index.posts()
        photos = {p.id: m.path for p in posts for m in p.media if m.path is not None}
        if not photos:
            raise UserError("no imported posts with photos: run import-instagram first")
        tags = model_set(obj.config, device or obj.config.device).candidates_for(
            sorted(set(photos.values()))
        )
        click.echo(
            evaluate_personalizer(index, pipeline=lambda post: tags.get(photos.get(post.id), []))
        )


@cli.command()
@click.option(
    "--photos",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="How many 12-megapixel JPEGs to generate and scan.",
)
@click.option(
    "--small-files",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Size of the library for the no-op rescan.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where generated photos are kept between runs (default: a folder in $TMPDIR).",
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Photos to upscale (default: flickr8k/images in $PHOTOBATCH_DATA, else in "
    "../shared/data beside the checkout).",
)
@click.option("--device", type=DEVICE, help="Where the scan's models run.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="The scan's engine; ray also times the driver's commits.",
)
@click.option("--profile", is_flag=True, help="Also profile one scan and print where time goes.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def bench(
    ctx: click.Context,
    photos: int,
    small_files: int,
    workdir: Path | None,
    source: Path | None,
    device: str | None,
    engine: str,
    profile: bool,
    as_json: bool,
) -> None:
    """Measure scan throughput against a plain decode, peak memory, and a no-op rescan.

    Generates realistic 12 MP JPEGs (upscaled shared photos with grain and camera EXIF), times a
    full Pillow decode of them before and after an end-to-end `photobatch scan` in a child
    process (the reference is their mean), then the rescan of a large unchanged library. Prints
    a Markdown table row for docs/performance.md.
    """
    from photobatch.research.bench import DEFAULT_WORKDIR, run_benchmark

    result = run_benchmark(
        workdir or DEFAULT_WORKDIR,
        photos=photos,
        small_files=small_files,
        source_dir=source,
        device=device,
        engine=engine,
        profile=profile,
        config=ctx.find_root().params.get("config_path"),
        log=warn,
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(result.table())
    if result.profile:
        click.echo(result.profile)
