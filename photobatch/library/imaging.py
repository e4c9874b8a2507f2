"""Decoding photos for the encoder: upright RGB, as cheaply as the format allows.

A 12 MP JPEG is decoded with libjpeg's DCT scaling (``Image.draft``) straight to 1/2, 1/4 or 1/8
size, never below the model's input on either side, which saves most of the decode time. A RAW
file is decoded from the JPEG preview the camera embedded in it (through rawpy/LibRaw): the model
sees 224 pixels, so demosaicing 24 MP of sensor data would be wasted. Every failure is an
``ImageError`` naming the file, so one bad photo never stops a scan.

torch is imported only inside ``to_tensor``: ``photobatch.library.metadata`` uses this module's
opener without paying for it.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pillow_heif
from PIL import Image, UnidentifiedImageError

from photobatch.core.errors import UserError
from photobatch.library.discovery import RAW_EXTENSIONS

if TYPE_CHECKING:
    import torch

# Registered on import, i.e. once per process (and per decode worker).
pillow_heif.register_heif_opener()
# ``load_image`` refuses anything over Image.MAX_IMAGE_PIXELS as an error; Pillow's own warning
# for sizes between 1x and 2x that limit would only repeat it as noise on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Pillow's other warnings are about the file being read ("Corrupt EXIF data"): each one reaches
# ``pillow_warnings`` of the thread reading it, to be recorded with that photo, instead of
# raw lines on stderr (a cron mail).
warnings.filterwarnings("always", module=r"PIL\.")
_collecting = threading.local()
_show_warning = warnings.showwarning


def _collect(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    into = getattr(_collecting, "into", None)
    if into is not None and issubclass(category, UserWarning):
        into.append(" ".join(str(message).split()))
    else:
        _show_warning(message, category, *args, **kwargs)


warnings.showwarning = _collect


@contextmanager
def pillow_warnings() -> Iterator[list[str]]:
    """The warnings Pillow gives while this thread reads one file, as one-line messages (each
    once), instead of on stderr."""
    previous = getattr(_collecting, "into", None)
    _collecting.into = into = []
    try:
        yield into
    finally:
        _collecting.into = previous
        into[:] = list(dict.fromkeys(into))


MODEL_SIZE = 224

# Normalisation the EfficientNet-Lite0 weights were trained with: TF's Lite preprocessing,
# (pixel - 127) / 128. It classifies better than the ImageNet mean/std on real photos
# (91.5% vs 87.5% of 400 Flickr8k dog photos get a dog class in the top 5; tests/test_encoder.py).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0

# Decoders apply these EXIF orientations to reach the upright photo (EXIF 2.3, tag 0x0112).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112
# LibRaw's ``sizes.flip`` to the EXIF orientation it was read from (LibRaw maps 1..8 through
# "50132467"). Embedded previews are stored as the sensor saw them, so the RAW's flip applies.
_FLIP_TO_EXIF = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_WHITE = (255, 255, 255)


class ImageError(UserError):
    """A photo that cannot be decoded; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def open_image(path: Path) -> Image.Image:
    """Open lazily (header only) with the errors a scan can meet turned into ``ImageError``."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"refusing a possible decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(path, _unidentified(path)) from None
    except OSError as exc:
        if exc.errno is None:  # Pillow's own OSErrors are about content, not the disk
            raise ImageError(path, _content_problem(exc)) from None
        raise ImageError(path, f"cannot read file: {exc.strerror or exc}") from exc
    except Exception as exc:  # plugins raise anything on a hostile header: report, don't crash
        raise ImageError(path, f"corrupt image header: {type(exc).__name__}: {exc}") from None


def _content_problem(exc: OSError) -> str:
    problem = "truncated file" if "truncated" in str(exc).lower() else "corrupt image data"
    return f"{problem}: {exc}"


def _unidentified(path: Path) -> str:
    """Why Pillow recognised nothing: an empty file says so, anything else is 'not an image'."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    return "empty file (0 bytes)" if empty else "not an image, or a format photobatch cannot read"


def load_image(path: Path, target: int = MODEL_SIZE) -> Image.Image:
    """Decode ``path`` as an upright RGB image, at least ``target`` pixels on each side.

    Alpha is composited on white (a transparent PNG is a logo or screenshot on a light page, and
    black would make up content). The result is usually larger than ``target``; ``to_tensor``
    does the final resize.
    """
    path = Path(path)
    if path.suffix.lower() in RAW_EXTENSIONS:  # Pillow would read a TIFF-based RAW's thumbnail
        return _load_raw(path, target)
    with open_image(path) as im:
        rgb, orientation = _decode(im, path, target)
    return _upright(rgb, orientation)


def _decode(im: Image.Image, path: Path, target: int) -> tuple[Image.Image, int]:
    """Pixels of an opened image as RGB (draft-scaled when JPEG) and its EXIF orientation."""
    try:
        if im.format == "JPEG":
            # Picks the largest 1/2^k scale that keeps both sides >= target.
            im.draft("RGB", (target, target))
        _refuse_bomb(im, path)
        im.load()
        return _to_rgb(im, path), _orientation(im)
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(path, _content_problem(exc)) from None
    except Exception as exc:  # decoders raise anything on hostile input: report, don't crash
        raise ImageError(path, f"corrupt image data: {type(exc).__name__}: {exc}") from None


def _refuse_bomb(im: Image.Image, path: Path) -> None:
    """Pillow's pixel limit as an error before any pixel memory is allocated.

    Pillow itself only warns between 1x and 2x its limit; a bit flip in a PNG or TIFF header
    lands there easily and would make a worker allocate gigabytes. Checked after ``draft``, so a
    100 MP JPEG that libjpeg scales down while decoding is still fine.
    """
    limit = Image.MAX_IMAGE_PIXELS
    width, height = im.size
    if limit is not None and width * height > limit:
        raise ImageError(
            path,
            f"refusing a possible decompression bomb: {width}x{height} pixels is over "
            f"Pillow's limit of {limit}",
        )


def _upright(rgb: Image.Image, orientation: int) -> Image.Image:
    return rgb.transpose(_ORIENT[orientation]) if orientation in _ORIENT else rgb


def _load_raw(path: Path, target: int) -> Image.Image:
    """Decode a camera RAW file from its embedded preview, falling back to a half-size develop.

    A file with a RAW extension that LibRaw does not recognise (a JPEG renamed .CR2) goes to
    Pillow, which reads it by content like any other file.
    """
    import rawpy

    try:
        raw = _open_raw(path)
    except rawpy.LibRawFileUnsupportedError:
        try:
            with open_image(path) as im:
                rgb, orientation = _decode(im, path, target)
        except ImageError as exc:
            problem = f"corrupt RAW file, or not a RAW file (LibRaw cannot read it; {exc.problem})"
            raise ImageError(path, problem) from None
        return _upright(rgb, orientation)
    except rawpy.LibRawError as exc:
        raise ImageError(path, f"corrupt RAW file: {_libraw_message(exc)}") from None
    with raw:
        try:
            preview = _raw_preview(raw, path, target)
            if preview is not None:
                return preview
            # No usable preview: develop at half size (one pass, no interpolation); LibRaw
            # applies the flip itself here.
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except ImageError:
            raise
        except Exception as exc:  # LibRaw errors and whatever a broken preview raises
            raise ImageError(path, f"corrupt RAW file: {_libraw_message(exc)}") from None
    return Image.fromarray(pixels).convert("RGB")


def _open_raw(path: Path) -> Any:
    """LibRaw's handle on ``path``, read through a file object: rawpy encodes a path as strict
    UTF-8, so a file name that is not UTF-8 (a Latin-1 name from an old card) would fail there."""
    import rawpy

    try:
        with path.open("rb") as fh:
            if fh.read(1) == b"":
                raise ImageError(path, "empty file (0 bytes)")
            fh.seek(0)
            return rawpy.imread(fh)
    except OSError as exc:
        raise ImageError(path, f"cannot read file: {exc.strerror or exc}") from exc


def _raw_preview(raw: object, path: Path, target: int) -> Image.Image | None:
    """The embedded preview, upright, or None when there is none at least ``target`` on its
    shorter side (an upscaled 160x120 thumbnail would caption worse than a half-size develop)."""
    import rawpy

    try:
        thumb = raw.extract_thumb()  # type: ignore[attr-defined]
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    flip = _FLIP_TO_EXIF.get(raw.sizes.flip, 1)  # type: ignore[attr-defined]
    if thumb.format == rawpy.ThumbFormat.JPEG:
        with Image.open(io.BytesIO(thumb.data)) as im:
            if min(im.size) < target:
                return None
            rgb, own = _decode(im, path, target)
        return _upright(rgb, own if own != 1 else flip)
    rgb = Image.fromarray(thumb.data).convert("RGB")
    return None if min(rgb.size) < target else _upright(rgb, flip)


def _libraw_message(exc: Exception) -> str:
    """rawpy's messages are bytes; turn them into a readable line."""
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def raw_size(path: Path) -> tuple[int, int]:
    """Displayed (width, height) of a RAW file's image, from LibRaw's header parse only."""
    import rawpy

    try:
        with _open_raw(path) as raw:
            sizes = raw.sizes
    except rawpy.LibRawError as exc:
        raise ImageError(path, f"not a readable RAW file: {_libraw_message(exc)}") from None
    if sizes.flip in (5, 6):
        return sizes.height, sizes.width
    return sizes.width, sizes.height


def _orientation(im: Image.Image) -> int:
    """EXIF orientation as the decoder left it (pillow-heif already applied HEIF's own)."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # garbage EXIF must not cost the pixels
        return 1
    return value if isinstance(value, int) and value in _ORIENT else 1


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("L", "1", "CMYK", "YCbCr"):
        return im.convert("RGB")
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_to_uint8(np.asarray(im)), "L").convert("RGB")
    if mode in ("P", "PA", "LA", "La", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] == 255:
            return rgba.convert("RGB")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(path, f"unsupported pixel mode {mode}") from None


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale high-bit-depth or float grey levels to 0..255 instead of clipping them."""
    peak = float(pixels.max()) if pixels.size else 0.0
    if np.issubdtype(pixels.dtype, np.floating):
        top = 1.0 if peak <= 1.0 else 255.0
    else:
        top = 65535.0 if peak > 255 else 255.0
    scaled = pixels.astype(np.float32) * (255.0 / top)
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def to_tensor(img: Image.Image, size: int = MODEL_SIZE) -> torch.Tensor:
    """Squash to ``size`` x ``size`` (no crop: the captioner's training photos were squashed)
    and normalise for the encoder. Returns a float32 (3, size, size) tensor.

    The arithmetic is numpy so decode workers do not start torch thread pools.
    """
    import torch

    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (size, size):
        # reducing_gap lets Pillow box-reduce huge images first; the result is near-identical.
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    pixels = (np.asarray(img, dtype=np.float32) - PIXEL_MEAN) / PIXEL_STD
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
