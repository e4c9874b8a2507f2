"""Reading an Instagram data export: its posts, captions, times and media, in every layout.

An export is one or more zips, or
their unpacked folder; every layout Instagram has shipped is found by file name, not by path:

* 2018: ``media.json`` = ``{"photos": [{"caption", "taken_at", "path"}], "videos": [...]}``, plain
  UTF-8, one entry per photo (a carousel's photos share caption and time, and are regrouped);
* 2021 ``content/``, 2023-24 ``your_instagram_activity/content/`` and 2025
  ``your_instagram_activity/media/`` ``posts_N.json``: a list of posts, each with ``media``
  (``uri``, ``creation_timestamp``, ``title``). Every string there is UTF-8 whose bytes were
  escaped one per ``\\u00XX``, so it reads as mojibake until :func:`repair_mojibake`. A single-photo
  post keeps its caption and time on ``media[0]``; a multi-photo post has them at post level.

Big accounts get several parts; they are merged (media are looked up across all parts).

An export is not trusted: a JSON file over ``JSON_LIMIT`` or nested too deep for Python's parser
is skipped, as is a post whose text is not valid Unicode, and in an unpacked folder symbolic
links and special files are skipped; each is reported in ``Export.problems`` and the rest is
imported. A zip member that unpacks to far more than its compressed size (``MAX_INFLATION``) is
a zip bomb, left out as well; a zip whose members together do is refused. What an export costs
stays linear in its size: file names are indexed once each, whatever their depth
(``SuffixIndex``).
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from photobatch.core.errors import UserError
from photobatch.core.text import MAX_POST_HASHTAGS, extract_hashtags

POSTS_JSON = re.compile(r"posts_\d+\.json")
POSTS_HTML = re.compile(r"posts_\d+\.html")
LEGACY_JSON = "media.json"
LOOKED_FOR = "posts_*.json (2021 and later exports) or media.json (2018 exports)"
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".avi", ".3gp", ".mkv"})
MB = 1 << 20
# Far above a real posts_N.json (a few KB per post); Python's objects of a hostile JSON file
# take up to 25 times its size, so this keeps an import's memory well under 1.5 GB.
JSON_LIMIT = 16 * MB
# Instagram's own paths are a few folders deep and under 200 characters; a file named past these
# limits is no part of an export and is left out (reported once, with a count).
MAX_NAME_CHARS = 1024
MAX_NAME_PARTS = 32
# How many times its compressed size a zip member may unpack to, and a whole zip its size on
# disk: photos and videos hardly compress (about 1:1), a posts JSON about 10:1. The slack lets
# small, very regular files through; past either limit the zip is a bomb.
MAX_INFLATION = 100
INFLATION_SLACK = 64 * 1024
ZIP_SLACK = 64 * MB
# What reading a damaged zip member raises: CRC or header damage, truncation, an unsupported
# compression method, encryption.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


class InstagramExportError(UserError):
    """The export cannot be imported; the message names the file and the problem.

    Raised before anything is written, so the index is as it was.
    """


class SkippedFile(Exception):
    """One file of the export is left out (too big, too deep); the message says why."""


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
        """The caption's hashtags, at most the ``MAX_POST_HASHTAGS`` Instagram allows a post."""
        return extract_hashtags(self.caption)[:MAX_POST_HASHTAGS]


def repair_mojibake(text: str) -> str:
    """Undo Instagram's escaping of UTF-8 bytes as ``\\u00XX`` characters.

    Safe on text that was never escaped: a character above U+00FF, or bytes that are not UTF-8,
    mean the string is already right and it is returned unchanged.
    """
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


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


class SuffixIndex:
    """The first file registered under each path suffix (``b/c.jpg`` finds ``a/b/c.jpg``), in
    memory linear in the names' total length: a tree of path parts from the last one up, each
    part stored once, where indexing every suffix as a string costs the square of a name's
    depth (a 1.5 MB zip of deep names reached 4.8 GB)."""

    def __init__(self) -> None:
        self._root: dict[str, list[Any]] = {}  # part -> [first file below, {parts before it}]

    def add(self, parts: list[str], file: ExportFile) -> None:
        level = self._root
        for part in reversed(parts):
            node = level.setdefault(part, [file, {}])
            level = node[1]

    def get(self, parts: list[str]) -> ExportFile | None:
        level, found = self._root, None
        for part in reversed(parts):
            node = level.get(part)
            if node is None:
                return None
            found, level = node
        return found


class _Inflation:
    """A zip member's stream that refuses to unpack past its limits (see ``MAX_INFLATION``)."""

    def __init__(self, stream: IO[bytes], file: ExportFile, budget: list[int]) -> None:
        assert file.zip is not None
        packed = file.zip.getinfo(file.path).compress_size
        self.stream = stream
        self.file = file
        self.left = MAX_INFLATION * packed + INFLATION_SLACK
        self.budget = budget  # what the whole zip may still unpack to, shared by its members

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.left -= len(data)
        self.budget[0] -= len(data)
        if self.budget[0] < 0:
            raise InstagramExportError(
                f"{self.file.label}: the zip unpacks to more than {MAX_INFLATION} times its "
                "size, which an Instagram export never does (a zip bomb); nothing was imported"
            )
        if self.left < 0:
            raise SkippedFile(
                f"{self.file.label}: unpacks to more than {MAX_INFLATION} times its compressed "
                "size, which no photo or export file does (a zip bomb): left out"
            )
        return data

    def __enter__(self) -> _Inflation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()


@dataclass(frozen=True)
class ExportFile:
    """One file of an export part: a zip member or a file in a folder."""

    label: str  # for messages: the file, or "zip:member"
    path: str  # inside the export, '/'-separated
    zip: zipfile.ZipFile | None = None
    disk: Path | None = None


class Export:
    """All parts of an export as one tree; media ``uri``s resolve across parts."""

    def __init__(self, sources: list[Path]) -> None:
        self.sources = sources
        self.files: list[ExportFile] = []
        self.problems: list[str] = []  # files and posts left out, each with the reason
        self._by_suffix = SuffixIndex()
        self._zips: list[zipfile.ZipFile] = []
        self._budgets: dict[int, list[int]] = {}  # per zip (by id): bytes it may still unpack
        self._overlong = 0
        try:
            for source in sources:
                self._add(source)
            if self._overlong:
                self.problems.append(
                    f"{self._overlong} files named deeper than {MAX_NAME_PARTS} folders or longer "
                    f"than {MAX_NAME_CHARS} characters, which no Instagram export has: left out"
                )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for zf in self._zips:
            zf.close()

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, source: Path) -> None:
        if source.is_dir():
            for folder, dirs, names in os.walk(source):
                dirs[:] = sorted(
                    d for d in dirs if not d.startswith(".") and self._plain(Path(folder) / d)
                )
                for name in sorted(names):
                    disk = Path(folder) / name
                    if self._plain(disk):
                        rel = disk.relative_to(source).as_posix()
                        self._register(ExportFile(str(disk), rel, disk=disk))
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
        self._budgets[id(zf)] = [MAX_INFLATION * source.stat().st_size + ZIP_SLACK]
        for info in zf.infolist():
            if not info.is_dir():
                self._register(ExportFile(f"{source}:{info.filename}", info.filename, zip=zf))

    def _plain(self, path: Path) -> bool:
        """Whether an unpacked export's entry is a real folder or file, not a link out of it."""
        try:
            mode = path.lstat().st_mode
        except OSError as exc:
            self.problems.append(f"{path}: cannot read: {exc.strerror}: skipped")
            return False
        if stat.S_ISLNK(mode):
            self.problems.append(f"{path}: a symbolic link: skipped (never followed)")
            return False
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            self.problems.append(f"{path}: not a regular file: skipped")
            return False
        return True

    def _register(self, file: ExportFile) -> None:
        if len(file.path) > MAX_NAME_CHARS or file.path.count("/") >= MAX_NAME_PARTS:
            self._overlong += 1
            return
        parts = file.path.strip("/").split("/")
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            return
        self.files.append(file)
        self._by_suffix.add(parts, file)

    def resolve(self, uri: str) -> ExportFile | None:
        """The file a post's ``uri`` names: uris are relative to the export's top folder."""
        return self._by_suffix.get(uri.strip().removeprefix("./").lstrip("/").split("/"))

    def open(self, file: ExportFile) -> IO[bytes]:
        if file.zip is not None:
            stream = file.zip.open(file.path)
            return _Inflation(stream, file, self._budgets[id(file.zip)])  # type: ignore[return-value]
        assert file.disk is not None
        # O_NOFOLLOW: a file swapped for a link after the walk is refused, not followed.
        return os.fdopen(os.open(file.disk, os.O_RDONLY | os.O_NOFOLLOW), "rb")

    def read_json(self, file: ExportFile) -> Any:
        """The decoded file; ``SkippedFile`` when it is over ``JSON_LIMIT`` or nested too deep."""
        try:
            with self.open(file) as fh:
                raw = fh.read(JSON_LIMIT + 1)
        except (*ZIP_READ_ERRORS, OSError) as exc:
            raise InstagramExportError(f"{file.label}: cannot read: {exc}") from exc
        if len(raw) > JSON_LIMIT:
            raise SkippedFile(f"{file.label}: larger than {JSON_LIMIT // MB} MB: skipped")
        try:
            return json.loads(raw)
        except RecursionError as exc:
            raise SkippedFile(f"{file.label}: JSON nested too deep to read: skipped") from exc
        except ValueError as exc:
            raise InstagramExportError(f"{file.label}: not valid JSON: {exc}") from exc

    def posts(self) -> list[InstagramPost]:
        """Every post of every part, in file order; layouts are told apart by file name."""
        names = [(f, f.path.rsplit("/", 1)[-1]) for f in self.files]
        found = [f for f, name in names if POSTS_JSON.fullmatch(name)]
        if found:
            return self._parse(found, parse_posts_json)
        legacy = [f for f, name in names if name == LEGACY_JSON]
        if legacy:
            return self._parse(legacy, parse_media_json)
        where = ", ".join(str(s) for s in self.sources)
        hint = ""
        if any(POSTS_HTML.fullmatch(name) for _, name in names):
            hint = "; this export is in HTML format: request one in JSON format"
        raise InstagramExportError(f"{where}: not an Instagram export: found no {LOOKED_FOR}{hint}")

    def _parse(
        self, files: list[ExportFile], parse: Callable[[Any, str], list[InstagramPost]]
    ) -> list[InstagramPost]:
        """The posts of ``files``, leaving out (and reporting) a skipped file or post."""
        posts = []
        for file in files:
            try:
                parsed = parse(self.read_json(file), file.label)
            except SkippedFile as exc:
                self.problems.append(str(exc))
                continue
            for post in parsed:
                if len(extract_hashtags(post.caption)) > MAX_POST_HASHTAGS:
                    self.problems.append(
                        f"{file.label}: post of {post.taken_at or 'unknown date'}: more than the "
                        f"{MAX_POST_HASHTAGS} hashtags Instagram allows: the first "
                        f"{MAX_POST_HASHTAGS} kept"
                    )
                if _storable(post):
                    posts.append(post)
                else:
                    self.problems.append(
                        f"{file.label}: post of {post.taken_at or 'unknown date'}: its text is "
                        "not valid Unicode (a lone surrogate): skipped"
                    )
        return posts


def _storable(post: InstagramPost) -> bool:
    """Whether every text of the post can be stored (SQLite text must be valid UTF-8)."""
    try:
        for text in (post.caption, *(m.uri for m in post.media)):
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _starts_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"PK"
    except OSError:
        return False
