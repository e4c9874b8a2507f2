"""Plain records that flow one way through the pipeline.

discovery -> ``FoundFile`` -> metadata -> ``PhotoMetadata`` -> models -> ``Analysis``;
``PhotoRecord`` is what the index holds for one path and what sidecar writers and exporters receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    """An image file seen on disk, with the cheap change-detection gate (size, mtime_ns)."""

    path: Path
    size: int
    mtime_ns: int


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
    caption_source: str | None = None  # sat, sat-weak, concept, scene or none (README: Grounding)
    hashtag_scores: dict[str, float] = field(default_factory=dict)  # 0-1 per tag of hashtags
    candidate_scores: dict[str, float] = field(default_factory=dict)  # evidence per candidate
    objects: dict[str, float] = field(default_factory=dict)  # supported objects: probability


@dataclass
class PhotoRecord:
    """Everything the index knows about one path: what sidecar writers receive."""

    path: Path
    sha256: str | None
    status: str  # "ok" | "error" | "missing"
    error: str | None = None
    metadata: PhotoMetadata = field(default_factory=PhotoMetadata)
    analysis: Analysis | None = None

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


@dataclass
class Post:
    """One of the user's own posts as the index keeps it."""

    id: str
    taken_at: str | None  # ISO 8601, UTC
    caption: str
    hashtags: list[str]  # lowercase, without '#', in caption order
    media: list[PostMedia] = field(default_factory=list)
