"""EXIF (via exifread) and the image header, reduced to ``PhotoMetadata``.

Real libraries hold garbage EXIF: zero denominators, out-of-range values, truncated IFDs, strings
where numbers belong. Nothing here raises for that: each field is read on its own, what cannot be
read is left empty and ``warning`` says why in a few words.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from numbers import Rational
from pathlib import Path
from typing import Any

import exifread

from photobatch.core.records import PhotoMetadata
from photobatch.library.discovery import RAW_EXTENSIONS
from photobatch.library.imaging import ImageError, open_image, pillow_warnings, raw_size

# exifread's HEIF parser keeps parse state in class attributes shared by all threads (its
# ``Box.subs``, ``Box.locs``...): two threads reading HEIC files at once lose each other's EXIF.
# Files in that container (an ISO-BMFF ``ftyp`` box first, whatever their name) are read one at
# a time; every other format's reader keeps no shared state and runs in parallel.
_HEIF_EXIF = threading.Lock()
# exifread logs a warning for every file without EXIF (PNG screenshots...): noise in a scan.
logging.getLogger("exifread").setLevel(logging.ERROR)

# (timestamp tag, its offset tag), most to least trustworthy for "when was this taken".
_DATE_TAGS = (
    ("EXIF DateTimeOriginal", "EXIF OffsetTimeOriginal"),
    ("EXIF DateTimeDigitized", "EXIF OffsetTimeDigitized"),
    ("Image DateTime", "EXIF OffsetTime"),
)
_DATE_RE = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"[+-]\d{2}:\d{2}")
# Orientations 5-8 swap width and height (EXIF 2.3, tag 0x0112).
_TRANSPOSED = {5, 6, 7, 8}
# libheif applies the HEIF transforms while decoding: Pillow's size is already as displayed.
_DECODER_ROTATES = {"HEIF", "AVIF"}


def read_metadata(path: Path) -> PhotoMetadata:
    """Read what the EXIF and header of ``path`` say; never raises for bad content."""
    path = Path(path)
    meta = PhotoMetadata()
    problems: list[str] = []
    try:
        with path.open("rb") as fh:
            is_heif = fh.read(12)[4:8] == b"ftyp"
            fh.seek(0)
            with _HEIF_EXIF if is_heif else contextlib.nullcontext():
                tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
    except OSError as exc:
        meta.warning = f"cannot read file: {exc.strerror or exc}"
        return meta
    except Exception as exc:  # exifread raises anything on hostile input
        problems.append(f"unreadable EXIF ({type(exc).__name__})")
        tags = {}

    def field(name: str, read: Callable[[], None]) -> None:
        try:
            read()
        except Exception as exc:  # one garbage field must not lose the others
            problems.append(f"bad {name} ({type(exc).__name__})")

    def read_taken_at() -> None:
        meta.taken_at = _taken_at(tags, problems)

    def read_camera() -> None:
        meta.camera_make = _text(tags.get("Image Make"))
        meta.camera_model = _text(tags.get("Image Model"))

    def read_lens() -> None:
        meta.lens = _lens(_text(tags.get("EXIF LensMake")), _text(tags.get("EXIF LensModel")))

    def read_gps() -> None:
        meta.lat, meta.lon = _gps(tags, problems)

    def read_orientation() -> None:
        meta.orientation = _orientation(tags.get("Image Orientation"), problems)

    field("date", read_taken_at)
    field("camera", read_camera)
    field("lens", read_lens)
    field("GPS", read_gps)
    field("orientation", read_orientation)
    with pillow_warnings() as noted:
        field("size", lambda: _size(path, tags, meta, problems))
    problems.extend(noted)
    meta.warning = "; ".join(problems) or None
    return meta


def _values(tag: Any) -> Any:
    return getattr(tag, "values", tag)


def _text(tag: Any) -> str | None:
    """An ASCII tag as a clean string, None when absent or blank."""
    if tag is None:
        return None
    value = _values(tag)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value).replace("\x00", " ").strip()
    return text or None


def _taken_at(tags: dict[str, Any], problems: list[str]) -> str | None:
    """The first parseable timestamp as ISO 8601, with its UTC offset when recorded."""
    for date_tag, offset_tag in _DATE_TAGS:
        raw = _text(tags.get(date_tag))
        if raw is None or raw.startswith("0000"):  # all-zero: the camera's "not set"
            continue
        match = _DATE_RE.match(raw)
        try:
            stamp = datetime(*(int(g) for g in match.groups())) if match else None
        except ValueError:
            stamp = None
        if stamp is None:
            problems.append(f"unparseable {date_tag.split()[-1]} {raw[:30]!r}")
            continue
        offset = _text(tags.get(offset_tag))
        suffix = offset if offset and _OFFSET_RE.fullmatch(offset) else ""
        return stamp.isoformat(timespec="seconds") + suffix
    return None


def _lens(make: str | None, model: str | None) -> str | None:
    """LensModel, prefixed with LensMake unless the model already names it."""
    if model is None:
        return None
    if make and make.lower() not in model.lower():
        return f"{make} {model}"
    return model


def _rational(value: Any) -> float | None:
    """A rational or integer as float; None for x/0 (exifread keeps zero denominators)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Rational):
        if value.denominator == 0:
            return 0.0 if value.numerator == 0 else None
        return value.numerator / value.denominator
    if isinstance(value, int | float):
        return float(value)
    return None


def _degrees(tag: Any) -> float | None:
    """Degrees, minutes, seconds (any trailing parts may be missing) to decimal degrees."""
    parts = [_rational(v) for v in _values(tag)][:3]
    if not parts or any(p is None for p in parts):
        return None
    deg, minutes, seconds = (*parts, 0.0, 0.0)[:3]
    return deg + minutes / 60 + seconds / 3600


def _gps(tags: dict[str, Any], problems: list[str]) -> tuple[float | None, float | None]:
    """Signed decimal degrees, or (None, None) when absent, incomplete or out of range."""
    lat_tag, lon_tag = tags.get("GPS GPSLatitude"), tags.get("GPS GPSLongitude")
    if lat_tag is None and lon_tag is None:
        return None, None
    lat = _degrees(lat_tag) if lat_tag is not None else None
    lon = _degrees(lon_tag) if lon_tag is not None else None
    if lat is None or lon is None:
        problems.append("incomplete or unreadable GPS position")
        return None, None
    if (_text(tags.get("GPS GPSLatitudeRef")) or "N").upper().startswith("S"):
        lat = -lat
    if (_text(tags.get("GPS GPSLongitudeRef")) or "E").upper().startswith("W"):
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        problems.append(f"GPS position out of range ({lat:.4g}, {lon:.4g})")
        return None, None
    return lat, lon


def _orientation(tag: Any, problems: list[str]) -> int:
    if tag is None:
        return 1
    values = _values(tag)
    value = values[0] if isinstance(values, list) and values else values
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    if value != 0:  # 0 is what some cameras write for "unknown"
        problems.append(f"invalid orientation {value!r}")
    return 1


def _size(path: Path, tags: dict[str, Any], meta: PhotoMetadata, problems: list[str]) -> None:
    """Displayed pixel size from the image header (no decode), else from EXIF.

    A RAW file's size comes from LibRaw: Pillow would report the TIFF thumbnail's.
    """
    try:
        if path.suffix.lower() in RAW_EXTENSIONS:
            (width, height), already_rotated = raw_size(path), True
        else:
            with open_image(path) as im:
                width, height = im.size
                already_rotated = im.format in _DECODER_ROTATES
    except ImageError as exc:
        problems.append(exc.problem)
        try:
            width = int(_values(tags["EXIF ExifImageWidth"])[0])
            height = int(_values(tags["EXIF ExifImageLength"])[0])
        except Exception:  # no usable EXIF size either: leave it unknown
            return
        already_rotated = False
    if meta.orientation in _TRANSPOSED and not already_rotated:
        width, height = height, width
    meta.width, meta.height = width, height
