"""Importing an export's posts into the index: media copied and encoded, one transaction.

Nothing touches the index until everything has been read, copied and encoded, so a corrupt zip or
broken JSON imports nothing (and the media copied so far are removed).

A post's id is derived from the content hashes of its media (order-free), so it is the same in
every export format and every re-import; a post without any media file falls back to its time and
caption, and a second post with the same media but another caption (a repost) adds those.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from photobatch.core.config import personal_dir
from photobatch.core.records import Post, PostMedia
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
    from photobatch.models.encoder import ImageEncoder


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
    *,
    batch_size: int = 32,
) -> ImportSummary:
    """Import the posts of an export (its zips and/or folders, all parts) into ``index``.

    Photos are copied to ``<index>.personal/instagram/<sha256>.<ext>`` (this index's own, see
    ``personal_dir``) and encoded (``encoder.load()`` is
    called only when some photo's content has no embedding yet). Re-importing the same or a
    newer export of the account updates posts in place. Raises ``InstagramExportError``, having
    written nothing, when the export cannot be read.
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
            self.summary.problems.append(f"{media.uri}: named by a post but not in the export")
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

        from photobatch.library.imaging import ImageError, load_image, pillow_warnings, to_tensor

        encoder.load()
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
            pooled = encoder.encode(torch.stack(tensors)).pooled
            rows = pooled.to(torch.float16).cpu().numpy().astype("<f2")
            for sha256, row in zip(hashes, rows, strict=True):
                embeddings[sha256] = row.tobytes()
            summary.encoded += len(hashes)
    for media in photos:
        media.embedding = embeddings.get(media.sha256 or "")
