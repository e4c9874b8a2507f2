"""Plain records that flow one way through the pipeline.

discovery -> ``FoundFile`` -> metadata -> ``PhotoMetadata`` -> models -> ``Analysis`` (which
after-analysis plugins may change, recording what they changed in ``PluginChanges``); a scan
commits a ``PhotoRow`` per path and reads ``IndexedFile``s back to tell what changed;
``PhotoRecord`` is what the index holds for one path and what sidecar writers and exporters receive;
a ``Review`` is what the user decided about one content in ``photobatch review``, applied on top of
the models' ``Analysis`` by ``PhotoRecord.reviewed``.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    """An image file seen on disk, with the cheap change-detection gate (size, mtime_ns)."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(slots=True)  # a scan reads one per indexed path: slots keep 100,000 of them cheap
class IndexedFile:
    """What the index last recorded of one path: the rescan gate compares it with the file now."""

    size: int
    mtime_ns: int
    status: str  # "ok" | "error" | "missing"
    sha256: str | None

    def unchanged(self, found: FoundFile) -> bool:
        """Whether ``found`` is the file as last scanned (a path marked missing that is back is
        not: it is scanned again)."""
        return (
            self.size == found.size and self.mtime_ns == found.mtime_ns and self.status != "missing"
        )


@dataclass
class PhotoMetadata:
    """What the EXIF (and the image header) say about a photo.

    ``warning`` records garbage or unreadable EXIF: the photo is still processed.
    """

    taken_at: str | None = None  # ISO 8601, with offset when the camera recorded one
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    lat: float | None = None
    lon: float | None = None
    orientation: int = 1
    width: int | None = None  # as displayed, after orientation
    height: int | None = None
    warning: str | None = None


@dataclass
class Analysis:
    """Model outputs for one image content (keyed by sha256, so a moved photo keeps them)."""

    sha256: str
    labels: list[str] = field(default_factory=list)  # top ImageNet class names, best first
    caption: str | None = None
    hashtags: list[str] = field(default_factory=list)  # without '#', best first (final)
    candidates: list[str] = field(default_factory=list)  # the hashtags before personalization
    post_text: str | None = None  # a post draft in the user's voice, from the personal head
    embedding: bytes | None = None  # pooled encoder vector, float16 little-endian
    models: str | None = None  # which model versions produced this
    personalized_by: str | None = None  # id of the personal head that ranked ``hashtags``
    caption_confidence: float | None = None  # 0-1; None: analysed before grounding existed
    caption_source: str | None = None  # sat, sat-weak, concept, scene or none (docs: grounding)
    hashtag_scores: dict[str, float] = field(default_factory=dict)  # 0-1 per tag of hashtags
    candidate_scores: dict[str, float] = field(default_factory=dict)  # evidence per candidate
    plugins: str | None = None  # the after-analysis plugins that ran on it, "name@version+..."
    plugin_changes: PluginChanges | None = None  # None: those plugins changed nothing
    objects: dict[str, float] = field(default_factory=dict)  # what search finds it by: probability

    def added_by(self, tag: str) -> str | None:
        """The plugin that added this hashtag (None: the models gave it)."""
        return self.plugin_changes.tags.get(tag) if self.plugin_changes else None

    def unplugged(self) -> Analysis:
        """The models' own output, as it was before the after-analysis plugins changed it (its
        ``hashtags`` still need the personal head)."""
        changes = self.plugin_changes
        if changes is None:
            return replace(self, plugins=None)
        return replace(
            self,
            candidates=list(changes.model_candidates),
            candidate_scores=dict(changes.model_scores),
            labels=list(changes.model_labels),
            plugins=None,
            plugin_changes=None,
        )


@dataclass
class PluginChanges:
    """What after-analysis plugins changed in one analysis: which plugin added each hashtag and
    label (their provenance), and the models' own candidates and labels from before, so a
    change of installed plugins applies them again to the models' output without the models."""

    tags: dict[str, str] = field(default_factory=dict)  # candidate hashtag -> plugin that added it
    labels: dict[str, str] = field(default_factory=dict)  # label -> plugin that added it
    model_candidates: list[str] = field(default_factory=list)
    model_scores: dict[str, float] = field(default_factory=dict)
    model_labels: list[str] = field(default_factory=list)


@dataclass
class PhotoRow:
    """One path's row as a scan commits it: the file, what identified it, and how it went."""

    found: FoundFile
    status: str  # "ok" | "error" | "missing"
    sha256: str | None = None
    metadata: PhotoMetadata | None = None  # None: not read (a file that could not be)
    error: str | None = None


USER_SOURCE = "user"  # ``caption_source`` of a caption the user approved or wrote


@dataclass
class Review:
    """The user's decisions about one content (keyed by sha256, like ``Analysis``): user data.

    No scan, re-analysis or model change touches it. ``approved_*`` is what the user approved, as
    it stood then (edited since by the user only): a later model's output is a suggestion beside
    it, never a replacement.
    """

    sha256: str
    verdict: str | None = None  # "approved" | "rejected" | None: not decided
    caption: str | None = None  # the user's own caption ("" clears it); None: the model's
    post_text: str | None = None  # the user's own post draft; None: the model's
    added: list[str] = field(default_factory=list)  # hashtags the user added, in order
    removed: list[str] = field(default_factory=list)  # the models' hashtags the user removed
    approved_caption: str | None = None
    approved_hashtags: list[str] = field(default_factory=list)
    approved_models: str | None = None  # the model versions whose output was approved
    updated_at: str | None = None

    @property
    def state(self) -> str | None:
        """approved, rejected, edited (changes but no verdict) or None (untouched)."""
        if self.verdict:
            return self.verdict
        edited = self.caption is not None or self.post_text is not None
        return "edited" if edited or self.added or self.removed else None


@dataclass
class PhotoRecord:
    """Everything the index knows about one path: what sidecar writers receive."""

    path: Path
    sha256: str | None
    status: str  # "ok" | "error" | "missing"
    error: str | None = None
    metadata: PhotoMetadata = field(default_factory=PhotoMetadata)
    analysis: Analysis | None = None
    review: Review | None = None

    @property
    def keywords(self) -> list[str]:
        """Keywords for sidecars: the hashtags without '#', best first. Without hashtags, an
        analysis from before grounding falls back to its labels; a grounded one had no evidence
        for any keyword, so it gets none."""
        if self.analysis is None:
            return []
        if self.analysis.hashtags or self.analysis.caption_source is not None:
            return list(self.analysis.hashtags)
        return list(self.analysis.labels)

    def reviewed(self, *, models: bool = True) -> PhotoRecord:
        """This record with the user's review applied to its analysis.

        Approved: exactly what the user approved (caption source ``user``, every tag scored 1).
        Otherwise the user's own caption, post draft and added hashtags win, and the models'
        output fills the rest, less the hashtags the user removed, unless the photo was rejected
        or ``models`` is False: then only what the user wrote remains.
        """
        a, r = self.analysis, self.review or Review(self.sha256 or "")
        if a is None or (self.review is None and models):
            return self
        if r.verdict == "approved":
            caption, tags = r.approved_caption, list(r.approved_hashtags)
            scores = dict.fromkeys(tags, 1.0)
            trusted = True
        else:
            trusted = models and r.verdict != "rejected"
            caption = r.caption if r.caption is not None else (a.caption if trusted else None)
            tags = [t for t in a.hashtags if t not in r.removed] if trusted else []
            scores = {t: a.hashtag_scores.get(t, 0.0) for t in tags}
            tags += [t for t in r.added if t not in scores]
            scores.update((t, 1.0) for t in r.added if t not in scores)
        own_caption = r.verdict == "approved" or r.caption is not None
        source = (a.caption_source, a.caption_confidence) if trusted else (None, None)
        analysis = replace(
            a,
            caption=caption,
            caption_source=USER_SOURCE if own_caption else source[0],
            caption_confidence=1.0 if own_caption else source[1],
            hashtags=tags,
            hashtag_scores=scores,
            labels=list(a.labels) if trusted else [],
            post_text=(
                r.post_text if r.post_text is not None else a.post_text if trusted else None
            ),
        )
        return replace(self, analysis=analysis)

    def as_written(self, min_confidence: float, write: str = "auto") -> PhotoRecord:
        """What sidecars hold: the reviewed record (``write: approved``: of the models' output,
        only what the user approved), its model caption left out below ``min_confidence``."""
        return self.reviewed(models=write == "auto").described(min_confidence)

    def described(self, min_confidence: float) -> PhotoRecord:
        """This record as sidecars show it: a caption below ``min_confidence`` is left out (no
        description rather than a wrong one); one analysed before confidences existed stays."""
        a = self.analysis
        if a is None or a.caption_confidence is None or a.caption_confidence >= min_confidence:
            return self
        return replace(self, analysis=replace(a, caption=None))


@dataclass
class PostMedia:
    """One item of an imported post: photos are copied and encoded, videos only recorded."""

    kind: str  # "photo" | "video"
    uri: str  # where the export had it
    path: Path | None = None  # the copy in the index's own folder; None for videos, missing files
    sha256: str | None = None
    embedding: bytes | None = None  # pooled encoder vector, float16 little-endian
    candidates: list[str] = field(default_factory=list)  # the scan's hashtags of the photo
    models: str | None = None  # which model versions made ``embedding`` and ``candidates``


@dataclass
class Post:
    """One of the user's own posts as the index keeps it."""

    id: str
    taken_at: str | None  # ISO 8601, UTC
    caption: str
    hashtags: list[str]  # lowercase, without '#', in caption order
    media: list[PostMedia] = field(default_factory=list)


def post_identity(taken_at: str | None, caption: str, uris: Sequence[str]) -> str:
    """A post's id, from what every export of it says alike, whether or not its media came along.

    The time Instagram recorded for the post is its identity: every layout has it, to the
    second, and neither a caption edited since, nor media present or missing, nor folders moved
    between export layouts change it. One account cannot post twice within a second, so two
    entries of the same second are one post. Without a time the caption and the media file names
    (not their folders, which layouts move) stand in.
    """
    key = ["at", taken_at] if taken_at else ["text", caption, *map(media_name, uris)]
    return hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()[:20]


def media_name(uri: str) -> str:
    """A media file's name as an export lists it, without the folders export layouts move."""
    return posixpath.basename(uri.strip().rstrip("/"))
