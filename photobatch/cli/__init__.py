"""The ``photobatch`` command line: parse options, call the library, report.

Every command here is a thin wrapper; the work lives in the modules it calls. Problems the user
can fix (bad config, unreadable index, a second scan) end with a one-line message and an exit
code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from photobatch import __version__
from photobatch.core.config import Config, ConfigError, load_config
from photobatch.core.lock import EX_TEMPFAIL, LockHeld, ScanLock
from photobatch.library.index import EXPORT_COLUMNS, Index, IndexOpenError


class Context:
    """What the group resolves once for every command: the effective config."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @contextmanager
    def index(self) -> Iterator[Index]:
        try:
            index = Index(self.config.index)
        except IndexOpenError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            yield index
        finally:
            index.close()


pass_context = click.make_pass_decorator(Context)
DEVICE = click.Choice(["auto", "cpu", "cuda"])


@click.group()
@click.version_option(__version__, prog_name="photobatch")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $PHOTOBATCH_CONFIG, then ~/.config/photobatch/config.yaml).",
)
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Index database (default: $PHOTOBATCH_INDEX, then the config, then "
    "~/.local/share/photobatch/index.db).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, index_path: Path | None) -> None:
    """Captions, hashtags and XMP keywords for your photo library, computed on this machine."""
    try:
        config = load_config(config_path, index=index_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx.obj = Context(config)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=False))
@click.option("--no-sidecars", is_flag=True, help="Update the index only; write no sidecars.")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config: auto = CUDA when present).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@pass_context
def scan(
    obj: Context, paths: tuple[Path, ...], no_sidecars: bool, device: str | None, quiet: bool
) -> None:
    """Scan photo folders (or files) once and bring the index and sidecars up to date.

    Incremental: unchanged photos cost one stat each; moved or renamed photos reuse their
    results. Unreadable files are recorded with their error and counted; the exit code is 0
    whenever the scan ran, 75 when another scan holds the index's lock.
    """
    from photobatch.scan.pipeline import ScanError, Scanner

    try:
        with ScanLock(obj.config.index), obj.index() as index:
            scanner = Scanner(
                obj.config,
                index,
                sidecars=not no_sidecars,
                device=device,
                progress=not quiet,
            )
            summary = scanner.scan(list(paths))
    except LockHeld as exc:
        click.echo(f"photobatch: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    except (ScanError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in summary.problems:
        click.echo(f"photobatch: {problem}", err=True)
    if not quiet:
        click.echo(summary.line())


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    help="Seconds a file must stay unchanged before processing (config: watch.settle_seconds).",
)
@click.option("--poll", is_flag=True, help="Poll instead of using inotify (config: watch.poll).")
@click.option("--no-sidecars", is_flag=True, help="Update the index only; write no sidecars.")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config: auto = CUDA when present).",
)
@pass_context
def watch(
    obj: Context,
    paths: tuple[Path, ...],
    settle: float | None,
    poll: bool,
    no_sidecars: bool,
    device: str | None,
) -> None:
    """Scan, then keep watching the folders and process photos as they arrive.

    A photo is processed once it has stopped changing; moves keep their results; SIGTERM or
    Ctrl-C finish the batch in hand, release the lock and exit 0. Logs go to stderr.
    """
    import logging

    from photobatch.scan.pipeline import ScanError, Scanner
    from photobatch.scan.watcher import Watcher

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        with ScanLock(obj.config.index), obj.index() as index:
            scanner = Scanner(
                obj.config, index, sidecars=not no_sidecars, device=device, progress=False
            )
            Watcher(
                scanner,
                list(paths),
                settle=obj.config.watch.settle_seconds if settle is None else settle,
                poll=poll or obj.config.watch.poll,
            ).run()
    except LockHeld as exc:
        click.echo(f"photobatch: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    except (ScanError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option(
    "--table",
    type=click.Choice(sorted(EXPORT_COLUMNS)),
    default="photos",
    show_default=True,
    help="What to export.",
)
@click.option("--format", "fmt", required=True, help="Output format: csv, json or jsonl.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
@pass_context
def export(obj: Context, table: str, fmt: str, output: Path | None) -> None:
    """Export the index: one row per image file found, failures included."""
    from photobatch.core.hooks import exporters

    available = exporters()
    if fmt not in available:
        raise click.BadParameter(
            f"'{fmt}' is not an installed format (choose from {', '.join(sorted(available))})",
            param_hint="--format",
        )
    with obj.index() as index:
        rows = index.export_rows(table)
        columns = EXPORT_COLUMNS[table]
        # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
        if output is None:
            sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
            available[fmt].export(rows, columns, sys.stdout)
        else:
            with open(output, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
                count = available[fmt].export(rows, columns, out)
            click.echo(f"photobatch: wrote {count} rows to {output}", err=True)


@cli.command()
@pass_context
def status(obj: Context) -> None:
    """Counts, models in use and the last scan."""
    with obj.index() as index:
        counts = index.counts()
        last = index.last_scan()
        models = index.models_in_use()
        lines = [
            f"index:     {obj.config.index} (schema {index.schema_version})",
            "photos:    "
            + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "error", "missing")),
            f"analysed:  {counts['analyses']} distinct photos",
            f"models:    {', '.join(models) if models else 'none yet'}",
        ]
        if last:
            summary = json.loads(last["summary"])
            lines.append(
                f"last scan: {last['finished_at']} of {', '.join(json.loads(last['roots']))}: "
                f"{summary['found']} found, {summary['analyzed']} analysed, "
                f"{summary['errors']} unreadable, {summary['missing']} missing"
            )
        else:
            lines.append("last scan: never")
        lines.extend(personal_status(index, obj.config.personalizer_path))
    click.echo("\n".join(lines))


def personal_status(index: Index, head: Path) -> list[str]:
    """The profile and personal-head lines of ``status`` (torch-free unless a head exists)."""
    from photobatch.instagram.export import user_profile

    profile = user_profile(index, top_d=12)
    if not profile:
        return [
            "profile:   no Instagram posts imported: hashtags are not personalized "
            "(run 'photobatch import-instagram EXPORT', then 'photobatch train personalizer')"
        ]
    from photobatch.models.personalizer import personalizer_status

    return [
        f"profile:   {len(index.post_ids())} posts; " + ", ".join(t for t, _ in profile),
        personalizer_status(index, head),
    ]


@cli.command()
@click.argument("photo", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--attention",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the caption word by word, each word over the part of the photo the model "
    "looked at, into this PNG file.",
)
@pass_context
def show(obj: Context, photo: Path, as_json: bool, attention: Path | None) -> None:
    """Everything the index knows about one photo."""
    with obj.index() as index:
        record = index.record(photo.expanduser().absolute())
    if record is None:
        raise click.ClickException(f"{photo}: not in the index {obj.config.index} (scan it first)")
    if attention is not None:
        from photobatch.library.imaging import ImageError
        from photobatch.models.attention import explain_photo
        from photobatch.models.captioner import CheckpointError

        try:
            explain_photo(record.path, attention, obj.config.captioner, obj.config.device)
        except (ImageError, CheckpointError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"attention figure: {attention}", err=True)
    info: dict[str, Any] = {
        "path": str(record.path),
        "status": record.status,
        "error": record.error,
        "sha256": record.sha256,
        **asdict(record.metadata),
    }
    if record.analysis is not None:
        a = record.analysis
        info.update(
            caption=a.caption,
            hashtags=" ".join(f"#{t}" for t in a.hashtags),
            labels="; ".join(a.labels),
            post_text=a.post_text,
            models=a.models,
        )
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        if value not in (None, ""):
            click.echo(f"{key + ':':<{width + 1}} {value}")


@cli.command("import-instagram")
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--device",
    type=DEVICE,
    help="Where the encoder runs (default from config).",
)
@pass_context
def import_instagram(obj: Context, exports: tuple[Path, ...], device: str | None) -> None:
    """Import your Instagram history so hashtags can follow your style.

    EXPORTS are the zip file(s) or the unpacked folder of Instagram's "Download your
    information" in JSON format; all parts of a large export together. Photos are copied into
    photobatch's data folder, so the export can be deleted afterwards. Importing again is safe.
    """
    from photobatch.instagram.export import InstagramExportError, import_instagram
    from photobatch.models.encoder import ImageEncoder

    encoder = ImageEncoder(device or obj.config.device)
    with obj.index() as index:
        try:
            summary = import_instagram(
                index,
                list(exports),
                encoder,
                obj.config.data_dir,
                batch_size=obj.config.batch_size,
            )
        except InstagramExportError as exc:
            raise click.ClickException(str(exc)) from exc
    for problem in summary.problems:
        click.echo(f"photobatch: {problem}", err=True)
    click.echo(summary.line())


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


def caption_data(command: Callable[..., None]) -> Callable[..., None]:
    """The options naming a caption data set, shared by ``train`` and ``evaluate captioner``."""
    options = [
        click.option(
            "--captions",
            required=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Captions: an image,caption CSV (as Flickr8k's) or a COCO-format caption JSON.",
        ),
        click.option(
            "--images",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="The folder holding the photos the captions name.",
        ),
        click.option(
            "--splits",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="An image,split CSV with train and val rows (default: the splits of a COCO "
            "JSON, else a fixed 5% of the photos held out as val).",
        ),
        click.option("--device", type=DEVICE, default="auto", show_default=True),
        click.option(
            "--cache",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where encoder features are cached (default: photobatch's data folder).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.group()
def train() -> None:
    """Train a model: the captioner, or your personal hashtag head."""


@train.command("personalizer")
@pass_context
def train_personalizer(obj: Context) -> None:
    """Learn your hashtag habits from the imported Instagram posts.

    The head is stored beside the index; the next scan re-ranks every photo's hashtags with it
    and drafts a post text in your voice. Without imported posts, hashtags stay generic.
    """
    from photobatch.models.personalizer import train_personalizer

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
    from photobatch.models.captioner import CheckpointError
    from photobatch.research.evaluation import format_scores
    from photobatch.training.captioner import TrainConfig, train_captioner

    changed = {key: value for key, value in overrides.items() if value is not None}
    if changed.get("images_per_epoch") == 0:
        changed["images_per_epoch"] = None
    if "init" in changed:
        changed["init"] = str(changed["init"].absolute())
    out = output or obj.config.data_dir / "captioner.pt"
    try:
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
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"best epoch {summary.best_epoch} of {summary.epochs_run} "
        f"({summary.train_images} train, {summary.val_images} val photos, "
        f"{summary.seconds / 60:.1f} min); val, greedy:\n{format_scores(summary.val_scores)}\n"
        f"saved {out}; to caption with it, set 'captioner: {{model: {out}}}' in the config"
    )


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
@click.option("--split", default="val", show_default=True, help="Which split to caption.")
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
) -> None:
    """BLEU-1..4, ROUGE-L, CIDEr (and METEOR when Java is installed) of a captioner.

    Captions one split with the beam settings a scan uses and scores them against the human
    captions with the pycocoevalcap scorers.
    """
    from photobatch.models.captioner import CheckpointError
    from photobatch.research.evaluation import evaluate_captioner, format_scores

    try:
        scores = evaluate_captioner(
            captions,
            images,
            splits,
            model=model or obj.config.captioner.model,
            split=split,
            device=device,
            cache_dir=cache,
            config=obj.config.captioner,
        )
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_scores(scores))


@evaluate.command("personalizer")
@click.option(
    "--device",
    type=DEVICE,
    help="Where the models run (default from config).",
)
@click.option(
    "--benchmark",
    "shared",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Instead of your posts, run the multi-user benchmark built from this shared-data "
    "folder (Flickr8k photos and captions, HARRISON hashtags).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --benchmark: where photo embeddings are cached (default: beside the index).",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="With --benchmark: how many benchmark users (the holdout user comes on top).",
)
@click.option(
    "--posts",
    "posts_per_user",
    type=click.IntRange(min=10),
    default=250,
    show_default=True,
    help="With --benchmark: posts per user.",
)
@pass_context
def evaluate_personalizer(
    obj: Context,
    device: str | None,
    shared: Path | None,
    cache: Path | None,
    users: int,
    posts_per_user: int,
) -> None:
    """P/R/F1@K of personal hashtags against baselines, on your latest 20% of posts.

    Trains on the earlier 80% of the imported posts (by time) and compares the personal head
    with the non-personalized pipeline, your K most frequent tags, the tags of the most similar
    earlier photo (1NN), and the head without its user-context memory.
    """
    from photobatch.models.stack import Analyzer
    from photobatch.research.personal import evaluate_personalizer, run_benchmark

    if shared is not None:
        cache = cache or obj.config.data_dir / "benchmark-cache"
        click.echo(run_benchmark(shared, cache, n_users=users, posts_per_user=posts_per_user))
        return

    with obj.index() as index:
        posts = index.posts()
        photos = {p.id: m.path for p in posts for m in p.media if m.path is not None}
        if not photos:
            raise click.ClickException("no imported posts with photos: run import-instagram first")
        analyzer = Analyzer(obj.config, device or obj.config.device)
        tags = analyzer.candidates_for(sorted(set(photos.values())))
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
    help="Photos to upscale (default: ../shared/data/flickr8k/images beside a checkout).",
)
@click.option("--device", type=DEVICE, help="Where the scan's models run.")
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
    profile: bool,
    as_json: bool,
) -> None:
    """Measure scan throughput against a plain decode, peak memory, and a no-op rescan.

    Generates realistic 12 MP JPEGs (upscaled shared photos with grain and camera EXIF), times a
    full Pillow decode of them before and after an end-to-end `photobatch scan` in a child
    process (the reference is their mean), then the rescan of a large unchanged library. Prints
    a Markdown table row for the README.
    """
    from photobatch.research.bench import (
        DEFAULT_SOURCE,
        DEFAULT_WORKDIR,
        BenchmarkError,
        run_benchmark,
    )

    try:
        result = run_benchmark(
            workdir or DEFAULT_WORKDIR,
            photos=photos,
            small_files=small_files,
            source_dir=source or DEFAULT_SOURCE,
            device=device,
            profile=profile,
            config=ctx.find_root().params.get("config_path"),
            log=lambda message: click.echo(message, err=True),
        )
    except BenchmarkError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(result.table())
    if result.profile:
        click.echo(result.profile)


@cli.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True, help="Most results to print.")
@pass_context
def search(obj: Context, query: str, limit: int) -> None:
    """Full-text search over captions, hashtags and labels; prints matching paths."""
    with obj.index() as index:
        for path in index.search(query, limit):
            click.echo(path)
