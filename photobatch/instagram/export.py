"""Importing the user's own past posts from an Instagram data export, and their profile.

The user's history is what personalises hashtag suggestions: which tags they actually use, and
what their photos look like (each photo's encoder embedding). An export is one or more zips, or
their unpacked folder; every layout Instagram has shipped is found by file name, not by path:

* 2018: ``media.json`` = ``{"photos": [{"caption", "taken_at", "path"}], "videos": [...]}``, plain
  UTF-8, one entry per photo (a carousel's photos share caption and time, and are regrouped);
* 2021 ``content/``, 2023-24 ``your_instagram_activity/content/`` and 2025
  ``your_instagram_activity/media/`` ``posts_N.json``: a list of posts, each with ``media``
  (``uri``, ``creation_timestamp``, ``title``). Every string there is UTF-8 whose bytes were
  escaped one per ``\\u00XX``, so it reads as mojibake until :func:`repair_mojibake`. A single-photo
  post keeps its caption and time on ``media[0]``; a multi-photo post has them at post level.

Big accounts get several parts; they are merged (media are looked up across all parts). Nothing
touches the index until everything has been read, copied and encoded: one transaction at the end,
so a corrupt zip or broken JSON imports nothing (and the media copied so far are removed).

A post's id is derived from the content hashes of its media (order-free), so it is the same in
every export format and every re-import; a post without any media file falls back to its time and
caption, and a second post with the same media but another caption (a repost) adds those.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from photobatch.library.index import Index, Post, PostMedia

if TYPE_CHECKING:
    from photobatch.models.encoder import ImageEncoder
    from photobatch.models.prior import HashtagPrior

POSTS_JSON = re.compile(r"posts_\d+\.json")
POSTS_HTML = re.compile(r"posts_\d+\.html")
LEGACY_JSON = "media.json"
LOOKED_FOR = "posts_*.json (2021 and later exports) or media.json (2018 exports)"
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".avi", ".3gp", ".mkv"})
MEDIA_DIR = "instagram"  # under the data dir: copies named by content, so the export can go
COPY_CHUNK = 1 << 20
# What reading a damaged zip member raises: CRC or header damage, truncation, an unsupported
# compression method, encryption.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@[\w.]+")
_HASH_SIGNS = "#\uff03"  # '#' and the full-width U+FF03 that CJK keyboards type


class InstagramExportError(Exception):
    """The export cannot be imported; the message names the file and the problem.

    Raised before anything is written, so the index is as it was.
    """


# -- parsing (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstagramMedia:
    uri: str  # path inside the export
    kind: str  # "photo" | "video"


@dataclass(frozen=True)
class InstagramPost:
    """One post as an export describes it (before its media are read)."""

    taken_at: str | None  # ISO 8601, UTC
    caption: str
    media: tuple[InstagramMedia, ...]

    @property
    def hashtags(self) -> list[str]:
        return extract_hashtags(self.caption)


def repair_mojibake(text: str) -> str:
    """Undo Instagram's escaping of UTF-8 bytes as ``\\u00XX`` characters.

    Safe on text that was never escaped: a character above U+00FF, or bytes that are not UTF-8,
    mean the string is already right and it is returned unchanged.
    """
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _is_word_char(ch: str) -> bool:
    """Letters, marks, digits and underscore of any script (``\\w`` misses combining marks)."""
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def _runs(text: str) -> Iterator[tuple[str, str]]:
    """(character before, run) for each maximal run of word characters in ``text``."""
    start = None
    for i, ch in enumerate(text + " "):
        if _is_word_char(ch):
            if start is None:
                start = i
        elif start is not None:
            yield (text[start - 1] if start else ""), text[start:i]
            start = None


def _normalise_tag(tag: str) -> str:
    return unicodedata.normalize("NFC", tag.casefold())


def extract_hashtags(caption: str) -> list[str]:
    """The caption's hashtags, casefolded, without '#', in order, each once.

    A tag is '#' and a run of word characters of any script, so ``#a#b`` is two tags and
    ``#sunset🌅!`` is ``sunset``. All-digit runs (``#1``) are not tags, as on Instagram, and a '#'
    inside a URL is not one either.
    """
    text = _URL.sub(" ", caption)
    tags = [
        _normalise_tag(run)
        for before, run in _runs(text)
        if before and before in _HASH_SIGNS and not all(c.isdigit() for c in run)
    ]
    return list(dict.fromkeys(tags))


def media_kind(uri: str) -> str:
    return "video" if os.path.splitext(uri)[1].lower() in VIDEO_EXTENSIONS else "photo"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _from_epoch(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InstagramExportError(f"{where}: creation_timestamp {value!r} is not a number")
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError) as exc:
        raise InstagramExportError(f"{where}: creation_timestamp {value!r}: {exc}") from exc


def _from_iso(value: Any, where: str) -> str | None:
    """2018's ``taken_at`` carries no offset; it is read as UTC, like the later timestamps."""
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InstagramExportError(f"{where}: taken_at {value!r} is not a date") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat()


def parse_posts_json(data: Any, source: str) -> list[InstagramPost]:
    """Posts from a 2021-2025 ``posts_N.json`` (already JSON-decoded); ``source`` names the file."""
    if not isinstance(data, list):
        raise InstagramExportError(f"{source}: expected a list of posts, found {_kind(data)}")
    posts = []
    for number, item in enumerate(data, 1):
        where = f"{source}: post {number}"
        media = item.get("media") if isinstance(item, dict) else None
        if not isinstance(media, list) or not all(
            isinstance(m, dict) and isinstance(m.get("uri"), str) for m in media
        ):
            raise InstagramExportError(f"{where}: expected a 'media' list of items with a 'uri'")
        first = media[0] if media else {}
        caption = _text(item.get("title")) or _text(first.get("title"))
        stamp = item.get("creation_timestamp", first.get("creation_timestamp"))
        uris = [repair_mojibake(m["uri"]) for m in media]
        posts.append(
            InstagramPost(
                taken_at=_from_epoch(stamp, where),
                caption=repair_mojibake(caption),
                media=tuple(InstagramMedia(u, media_kind(u)) for u in uris),
            )
        )
    return posts


def parse_media_json(data: Any, source: str) -> list[InstagramPost]:
    """Posts from a 2018 ``media.json``; photos sharing time and caption form one carousel post."""
    if not isinstance(data, dict) or not ({"photos", "videos"} & data.keys()):
        raise InstagramExportError(
            f"{source}: expected a mapping with 'photos' and 'videos', found {_kind(data)}"
        )
    grouped: dict[tuple[str | None, str], list[InstagramMedia]] = {}
    for key, kind in (("photos", "photo"), ("videos", "video")):
        entries = data.get(key) or []
        if not isinstance(entries, list):
            raise InstagramExportError(f"{source}: '{key}' is not a list")
        for number, entry in enumerate(entries, 1):
            where = f"{source}: {key} entry {number}"
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise InstagramExportError(f"{where}: expected an item with a 'path'")
            post = (_from_iso(entry.get("taken_at"), where), _text(entry.get("caption")))
            grouped.setdefault(post, []).append(InstagramMedia(entry["path"], kind))
    return [
        InstagramPost(taken_at=taken_at, caption=caption, media=tuple(media))
        for (taken_at, caption), media in grouped.items()
    ]


def _kind(data: Any) -> str:
    return {dict: "a mapping", list: "a list"}.get(type(data), type(data).__name__)


# -- the export on disk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """One file of an export part: a zip member or a file in a folder."""

    label: str  # for messages: the file, or "zip:member"
    path: str  # inside the export, '/'-separated
    zip: zipfile.ZipFile | None = None
    disk: Path | None = None


class _Export:
    """All parts of an export as one tree; media ``uri``s resolve across parts."""

    def __init__(self, sources: list[Path]) -> None:
        self.sources = sources
        self.files: list[_File] = []
        self._by_suffix: dict[str, _File] = {}
        self._zips: list[zipfile.ZipFile] = []
        try:
            for source in sources:
                self._add(source)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for zf in self._zips:
            zf.close()

    def __enter__(self) -> _Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, source: Path) -> None:
        if source.is_dir():
            for folder, dirs, names in os.walk(source):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    disk = Path(folder) / name
                    rel = disk.relative_to(source).as_posix()
                    self._register(_File(str(disk), rel, disk=disk))
            return
        if not source.exists():
            raise InstagramExportError(f"{source}: no such file or folder")
        try:
            zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            if source.suffix.lower() == ".zip" or _starts_like_zip(source):
                raise InstagramExportError(f"{source}: corrupt zip file: {exc}") from exc
            raise InstagramExportError(
                f"{source}: not an Instagram export (expected its .zip file(s) or unpacked "
                f"folder, holding {LOOKED_FOR})"
            ) from exc
        self._zips.append(zf)
        for info in zf.infolist():
            if not info.is_dir():
                self._register(_File(f"{source}:{info.filename}", info.filename, zip=zf))

    def _register(self, file: _File) -> None:
        parts = file.path.strip("/").split("/")
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            return
        self.files.append(file)
        for k in range(len(parts)):
            self._by_suffix.setdefault("/".join(parts[k:]), file)

    def resolve(self, uri: str) -> _File | None:
        """The file a post's ``uri`` names: uris are relative to the export's top folder."""
        return self._by_suffix.get(uri.strip().removeprefix("./").lstrip("/"))

    def open(self, file: _File) -> IO[bytes]:
        if file.zip is not None:
            return file.zip.open(file.path)
        assert file.disk is not None
        return open(file.disk, "rb")

    def read_json(self, file: _File) -> Any:
        try:
            with self.open(file) as fh:
                raw = fh.read()
        except (*ZIP_READ_ERRORS, OSError) as exc:
            raise InstagramExportError(f"{file.label}: cannot read: {exc}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InstagramExportError(f"{file.label}: not valid JSON: {exc}") from exc

    def posts(self) -> list[InstagramPost]:
        """Every post of every part, in file order; layouts are told apart by file name."""
        names = [(f, f.path.rsplit("/", 1)[-1]) for f in self.files]
        found = [f for f, name in names if POSTS_JSON.fullmatch(name)]
        if found:
            return [p for f in found for p in parse_posts_json(self.read_json(f), f.label)]
        legacy = [f for f, name in names if name == LEGACY_JSON]
        if legacy:
            return [p for f in legacy for p in parse_media_json(self.read_json(f), f.label)]
        where = ", ".join(str(s) for s in self.sources)
        hint = ""
        if any(POSTS_HTML.fullmatch(name) for _, name in names):
            hint = "; this export is in HTML format: request one in JSON format"
        raise InstagramExportError(f"{where}: not an Instagram export: found no {LOOKED_FOR}{hint}")


def _starts_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"PK"
    except OSError:
        return False


# -- import ----------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    posts: int = 0  # distinct posts in the export (parts merged, duplicates dropped)
    new: int = 0  # not in the index before
    photos: int = 0
    encoded: int = 0  # photos run through the encoder; the rest reused a stored embedding
    videos: int = 0  # kept on their post, but neither copied nor encoded
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # media missing or undecodable

    def line(self) -> str:
        problems = f", {len(self.problems)} problems" if self.problems else ""
        return (
            f"photobatch: imported {self.posts} posts ({self.new} new) with {self.photos} "
            f"photos ({self.encoded} encoded) and {self.videos} videos (skipped){problems} "
            f"in {self.seconds:.1f}s"
        )


def import_instagram(
    index: Index,
    sources: list[Path],
    encoder: ImageEncoder,
    data_dir: Path,
    *,
    batch_size: int = 32,
) -> ImportSummary:
    """Import the posts of an export (its zips and/or folders, all parts) into ``index``.

    Photos are copied to ``data_dir/instagram/<sha256>.<ext>`` and encoded (``encoder.load()`` is
    called only when some photo's content has no embedding yet). Re-importing the same or a
    newer export of the account updates posts in place. Raises ``InstagramExportError``, having
    written nothing, when the export cannot be read.
    """
    clock = time.monotonic()
    summary = ImportSummary()
    created: list[Path] = []
    try:
        with _Export([Path(s).expanduser().absolute() for s in sources]) as export:
            parsed = export.posts()
            copier = _MediaCopier(export, data_dir / MEDIA_DIR, created, summary)
            items = [(post, [copier.take(m) for m in post.media]) for post in parsed]
        posts = _merge(items)
        _embed(index, posts, encoder, batch_size, summary)
        known = index.post_ids()
        index.write_posts(posts)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    summary.posts = len(posts)
    summary.new = sum(p.id not in known for p in posts)
    summary.photos = sum(m.kind == "photo" for p in posts for m in p.media)
    summary.videos = sum(m.kind == "video" for p in posts for m in p.media)
    summary.seconds = time.monotonic() - clock
    return summary


class _MediaCopier:
    """Hashes each media file once; copies photos into the data dir, named by content."""

    def __init__(
        self, export: _Export, target: Path, created: list[Path], summary: ImportSummary
    ) -> None:
        self.export = export
        self.target = target
        self.created = created
        self.summary = summary
        self._done: dict[str, tuple[str, Path | None]] = {}

    def take(self, media: InstagramMedia) -> PostMedia:
        file = self.export.resolve(media.uri)
        if file is None:
            self.summary.problems.append(f"{media.uri}: named by a post but not in the export")
            return PostMedia(kind=media.kind, uri=media.uri)
        if file.label not in self._done:
            self._done[file.label] = self._copy(file, keep=media.kind == "photo")
        sha256, path = self._done[file.label]
        return PostMedia(kind=media.kind, uri=media.uri, path=path, sha256=sha256)

    def _copy(self, file: _File, keep: bool) -> tuple[str, Path | None]:
        """Stream the file once: hash it, and keep a copy when it is a photo."""
        digest = hashlib.sha256()
        self.target.mkdir(parents=True, exist_ok=True)
        suffix = os.path.splitext(file.path)[1].lower()
        fd, tmp = tempfile.mkstemp(dir=self.target, prefix=".import-", suffix=suffix)
        try:
            with self.export.open(file) as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(COPY_CHUNK):
                    digest.update(chunk)
                    if keep:
                        out.write(chunk)
            sha256 = digest.hexdigest()
            final = self.target / f"{sha256}{suffix}"
            if not keep:
                return sha256, None
            if not final.exists():
                os.replace(tmp, final)
                self.created.append(final)
            return sha256, final
        except ZIP_READ_ERRORS as exc:
            raise InstagramExportError(f"{file.label}: cannot read: {exc}") from exc
        except OSError as exc:
            raise InstagramExportError(
                f"{file.label}: cannot copy to {self.target}: {exc.strerror or exc}"
            ) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:20]


def _merge(items: list[tuple[InstagramPost, list[PostMedia]]]) -> list[Post]:
    """Give each post its stable id and drop the copies that several parts or exports repeat."""
    posts: dict[str, Post] = {}
    for parsed, media in sorted(items, key=lambda i: (i[0].taken_at or "", i[0].caption)):
        hashes = sorted(m.sha256 for m in media if m.sha256)
        post_id = _digest(*hashes) if hashes else _digest(parsed.taken_at or "", parsed.caption)
        if post_id in posts and posts[post_id].caption != parsed.caption:
            post_id = _digest(post_id, parsed.taken_at or "", parsed.caption)
        if post_id not in posts:
            posts[post_id] = Post(
                id=post_id,
                taken_at=parsed.taken_at,
                caption=parsed.caption,
                hashtags=parsed.hashtags,
                media=media,
            )
    return list(posts.values())


def _embed(
    index: Index,
    posts: list[Post],
    encoder: ImageEncoder,
    batch_size: int,
    summary: ImportSummary,
) -> None:
    """Fill in each copied photo's pooled embedding, reusing the ones the index already has."""
    photos = [m for p in posts for m in p.media if m.kind == "photo" and m.path and m.sha256]
    embeddings = index.known_embeddings(m.sha256 for m in photos if m.sha256)
    todo = {m.sha256: m for m in photos if m.sha256 and m.sha256 not in embeddings}
    if todo:
        import torch

        from photobatch.library.imaging import ImageError, load_image, to_tensor

        encoder.load()
        pending = list(todo.items())
        for start in range(0, len(pending), batch_size):
            hashes, tensors = [], []
            for sha256, media in pending[start : start + batch_size]:
                assert media.path is not None
                try:
                    tensors.append(to_tensor(load_image(media.path)))
                except (ImageError, OSError) as exc:
                    summary.problems.append(f"{media.uri}: cannot decode the photo: {exc}")
                    continue
                hashes.append(sha256)
            if not tensors:
                continue
            pooled = encoder.encode(torch.stack(tensors)).pooled
            rows = pooled.to(torch.float16).cpu().numpy().astype("<f2")
            for sha256, row in zip(hashes, rows, strict=True):
                embeddings[sha256] = row.tobytes()
            summary.encoded += len(hashes)
    for media in photos:
        media.embedding = embeddings.get(media.sha256 or "")


# -- the user's profile ----------------------------------------------------------------------------

# Common English function words and the fragments ``don't`` and friends split into.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with you your yours yourself yourselves s t d ll m o re ve y don isn
    aren wasn weren hasn haven hadn doesn didn won wouldn shan shouldn couldn mustn ain let get
    got im also us one via"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def caption_terms(caption: str) -> set[str]:
    """The profile terms of one caption: words and ``#hashtags``.

    Words are runs of letters, casefolded; stopwords, anything with a digit, @mentions, URLs and
    one-letter runs are dropped.
    """
    terms = {f"#{tag}" for tag in extract_hashtags(caption)}
    text = _MENTION.sub(" ", _URL.sub(" ", caption))
    for before, run in _runs(text):
        word = _normalise_tag(run)
        if before and before in _HASH_SIGNS:
            continue
        if len(word) > 1 and word not in STOPWORDS and not any(c.isdigit() for c in word):
            terms.add(word)
    return terms


def harrison_idf(prior: HashtagPrior) -> Callable[[str], float]:
    """Background IDF from the HARRISON hashtag prior, with unknown words capped.

    HARRISON knows only its ~1,000 popular hashtags, so a word it lacks is "not a popular tag",
    not "rarer than anything ever seen": it gets the IDF of the rarest tag HARRISON has (a
    document frequency of one post). That is the maximum IDF, so a user's own vocabulary (a
    dog's name, a niche hobby) ranks with the most distinctive known tags and how often the user
    uses it decides, while a known but common tag (#love) stays low.
    """
    cap = max(prior.idf(tag) for tag in prior.vocab)

    def idf(word: str) -> float:
        return prior.idf(word) if word in prior else cap

    return idf


def user_profile(
    index: Index, idf: Callable[[str], float] | None = None, top_d: int = 60
) -> list[tuple[str, float]]:
    """The user's ``top_d`` most distinctive words and ``#hashtags``, best first.

    TF-IDF over the imported posts: TF is the share of the user's posts that use a term (a word
    repeated inside one caption counts once), IDF comes from ``idf`` (default: the shipped
    HARRISON prior through :func:`harrison_idf`; a hashtag is looked up without its '#'), since
    one user's history alone gives no document frequencies. Ties are broken by the term.
    """
    posts = index.posts()
    if not posts:
        return []
    if idf is None:
        from photobatch.models.prior import default_prior

        idf = harrison_idf(default_prior())
    counts: Counter[str] = Counter()
    for post in posts:
        counts.update(caption_terms(post.caption))
    scores = [(term, n / len(posts) * idf(term.removeprefix("#"))) for term, n in counts.items()]
    scores.sort(key=lambda s: (-s[1], s[0]))
    return scores[:top_d]
