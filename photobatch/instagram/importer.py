"""Importing an export's posts into the index: media copied and analysed, one transaction.

Nothing touches the index until everything has been read, copied and analysed, so a corrupt zip or
broken JSON imports nothing (and the media copied so far are removed).

A post's id comes from its own fields (``core.records.post_identity``: the time Instagram recorded
for it), so it is the same in every export layout and every re-import, with or without the media
files: importing an export again, or a later one that overlaps it, updates its posts in place. A
re-import without the media keeps the photos an earlier import copied.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from photobatch.core.config import personal_dir
from photobatch.core.records import Post, PostMedia, media_name, post_identity
from photobatch.instagram.export import (
    MB,
    ZIP_READ_ERRORS,
    Export,
    ExportFile,
    InstagramExportError,
    InstagramMedia,
    InstagramPost,
    SkippedFile,
)
from photobatch.library.index import Index

if TYPE_CHECKING:
    from photobatch.models.stack import Analyzer


MEDIA_DIR = "instagram"  # in the index's personal dir; named by content, so the export can go


COPY_CHUNK = 1 << 20
# A photo is copied at most this big (a real one is a few MB); a video, only hashed for the
# post's id, is read at most this far. Past it the media is left out and reported.
PHOTO_LIMIT = 100 * MB
VIDEO_LIMIT = 1024 * MB
# A ``.import-*`` temp file untouched this long was left by a killed import: copying writes to
# its temp file without pause, so a live import's is never this old.
STALE_TEMP_SECONDS = 3600


@dataclass
class ImportSummary:
    posts: int = 0  # distinct posts in the export (parts merged, duplicates dropped)
    new: int = 0  # not in the index before
    total: int = 0  # posts in the index afterwards
    photos: int = 0  # photos the posts name
    encoded: int = 0  # photos run through the models; the rest reused stored results
    videos: int = 0  # kept on their post, but neither copied nor encoded
    without_photo: int = 0  # posts none of whose photos the index has: ranked by their text
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # files left out, photos undecodable
    missing: list[str] = field(default_factory=list)  # media named by a post, not in the export

    def line(self) -> str:
        problems = f", {len(self.problems)} problems" if self.problems else ""
        held = f"; the index holds {self.total}" if self.total != self.posts else ""
        return (
            f"photobatch: imported {self.posts} posts ({self.new} new{held}) with {self.photos} "
            f"photos ({self.encoded} analysed) and {self.videos} videos (skipped){problems} "
            f"in {self.seconds:.1f}s"
        )

    def missing_line(self) -> str | None:
        """One line for the media the export lacks, or None when it has them all."""
        if not self.missing:
            return None
        return (
            f"photobatch: {len(self.missing)} media files the posts name are not in the export "
            f"(an export without its media?); {self.without_photo} posts have no photo, and their "
            "captions and hashtags still teach your habits (--verbose lists the files)"
        )


def import_instagram(
    index: Index,
    sources: list[Path],
    analyzer: Analyzer,
    *,
    batch_size: int = 32,
) -> ImportSummary:
    """Import the posts of an export (its zips and/or folders, all parts) into ``index``.

    Photos are copied to ``<index>.personal/instagram/<sha256>.<ext>`` (this index's own, see
    ``personal_dir``) and analysed as a scan would (their embedding and the scan's hashtags, what
    the personal ranking learns from; the models run only for contents without results of the
    same models). Re-importing the same or a newer export of the account updates posts in place.
    Raises ``InstagramExportError``, having written nothing, when the export cannot be read.
    """
    clock = time.monotonic()
    summary = ImportSummary()
    created: list[Path] = []
    try:
        with Export([Path(s).expanduser().absolute() for s in sources]) as export:
            parsed = export.posts()
            summary.problems.extend(export.problems)
            target = personal_dir(index.path) / MEDIA_DIR
            copier = _MediaCopier(export, target, created, summary)
            items = [(post, [copier.take(m) for m in post.media]) for post in parsed]
        posts = _merge(items)
        _keep_earlier_photos(index, posts)
        _analyse(index, posts, analyzer, batch_size, summary)
        known = index.post_ids()
        index.write_posts(posts)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    summary.posts = len(posts)
    summary.new = sum(p.id not in known for p in posts)
    summary.total = len(known | {p.id for p in posts})
    summary.photos = sum(m.kind == "photo" for p in posts for m in p.media)
    summary.videos = sum(m.kind == "video" for p in posts for m in p.media)
    summary.without_photo = sum(
        not any(m.kind == "photo" and m.embedding for m in p.media) for p in posts
    )
    summary.seconds = time.monotonic() - clock
    return summary


class _MediaCopier:
    """Hashes each media file once; copies photos into ``target``, named by content."""

    def __init__(
        self, export: Export, target: Path, created: list[Path], summary: ImportSummary
    ) -> None:
        self.export = export
        self.target = target
        self.created = created
        self.summary = summary
        self._done: dict[str, tuple[str | None, Path | None]] = {}
        _sweep(target)

    def take(self, media: InstagramMedia) -> PostMedia:
        file = self.export.resolve(media.uri)
        if file is None:
            self.summary.missing.append(f"{media.uri}: named by a post but not in the export")
            return PostMedia(kind=media.kind, uri=media.uri)
        if file.label not in self._done:
            self._done[file.label] = self._copy(file, keep=media.kind == "photo")
        sha256, path = self._done[file.label]
        return PostMedia(kind=media.kind, uri=media.uri, path=path, sha256=sha256)

    def _copy(self, file: ExportFile, keep: bool) -> tuple[str | None, Path | None]:
        """Stream the file once: hash it, and keep a copy when it is a photo.

        A file over its limit is left out and reported: (None, None).
        """
        digest = hashlib.sha256()
        self.target.mkdir(parents=True, exist_ok=True)
        suffix = os.path.splitext(file.path)[1].lower()
        fd, tmp = tempfile.mkstemp(dir=self.target, prefix=".import-", suffix=suffix)
        limit, size = PHOTO_LIMIT if keep else VIDEO_LIMIT, 0
        try:
            with self.export.open(file) as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        self.summary.problems.append(
                            f"{file.label}: larger than {limit // MB} MB: left out"
                        )
                        return None, None
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
        except SkippedFile as exc:
            self.summary.problems.append(str(exc))
            return None, None
        except ZIP_READ_ERRORS as exc:
            raise InstagramExportError(f"{file.label}: cannot read: {exc}") from exc
        except OSError as exc:
            raise InstagramExportError(
                f"{file.label}: cannot copy to {self.target}: {exc.strerror or exc}"
            ) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)


def _sweep(folder: Path) -> None:
    """Delete the ``.import-*`` temp files a killed import left in ``folder``."""
    stale = time.time() - STALE_TEMP_SECONDS
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if (
                    entry.name.startswith(".import-")
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < stale
                ):
                    os.unlink(entry.path)
    except OSError:
        return  # housekeeping only: a real problem with the folder shows up in the copy


def _merge(items: list[tuple[InstagramPost, list[PostMedia]]]) -> list[Post]:
    """Give each post its id and drop the copies that several parts or exports repeat."""
    posts: dict[str, Post] = {}
    for parsed, media in sorted(items, key=lambda i: (i[0].taken_at or "", i[0].caption)):
        post_id = post_identity(parsed.taken_at, parsed.caption, [m.uri for m in parsed.media])
        if post_id not in posts:
            posts[post_id] = Post(
                id=post_id,
                taken_at=parsed.taken_at,
                caption=parsed.caption,
                hashtags=parsed.hashtags,
                media=media,
            )
    return list(posts.values())


def _keep_earlier_photos(index: Index, posts: list[Post]) -> None:
    """Media this export lacks keep the copy an earlier import of the same post made (matched by
    file name), so importing the JSON alone again loses no photo."""
    ids = {p.id for p in posts}
    earlier = {
        (post.id, media_name(m.uri)): m
        for post in index.posts()
        if post.id in ids
        for m in post.media
    }
    for post in posts:
        for i, media in enumerate(post.media):
            kept = earlier.get((post.id, media_name(media.uri)))
            if media.sha256 is None and kept is not None and kept.sha256 is not None:
                post.media[i] = replace(kept, uri=media.uri)


def _analyse(
    index: Index,
    posts: list[Post],
    analyzer: Analyzer,
    batch_size: int,
    summary: ImportSummary,
) -> None:
    """Fill in each copied photo's embedding and the scan's hashtags, reusing the results the
    index already has from the same models."""
    photos = [m for p in posts for m in p.media if m.kind == "photo" and m.path and m.sha256]
    known = index.known_photo_results((m.sha256 for m in photos if m.sha256), analyzer.models)
    todo = {m.sha256: m for m in photos if m.sha256 and m.sha256 not in known}
    if todo:
        from photobatch.library.imaging import ImageError, load_image, pillow_warnings, to_tensor

        pending = list(todo.items())
        for start in range(0, len(pending), batch_size):
            hashes, tensors = [], []
            for sha256, media in pending[start : start + batch_size]:
                assert media.path is not None
                try:
                    with pillow_warnings() as noted:
                        tensors.append(to_tensor(load_image(media.path)))
                except (ImageError, OSError) as exc:
                    summary.problems.append(f"{media.uri}: cannot decode the photo: {exc}")
                    continue
                finally:
                    summary.problems.extend(f"{media.uri}: {note}" for note in noted)
                hashes.append(sha256)
            if not tensors:
                continue
            for analysis in analyzer.describe(hashes, tensors):
                known[analysis.sha256] = (analysis.embedding, analysis.candidates)
            summary.encoded += len(hashes)
    for media in photos:
        if media.sha256 in known:
            media.embedding, media.candidates = known[media.sha256]
            media.models = analyzer.models
