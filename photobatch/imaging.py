"""Decoding photos for the encoder: upright RGB, as cheaply as the format allows.

A 12 MP JPEG is decoded with libjpeg's DCT scaling (``Image.draft``) straight to 1/2, 1/4 or 1/8
size, never below the model's input on either side, which saves most of the decode time. Every
failure is an ``ImageError`` naming the file, so one bad photo never stops a scan.

torch is imported only inside ``to_tensor``: ``photobatch.metadata`` uses this module's opener
without paying for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pillow_heif
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

# Registered on import, i.e. once per process (and per decode worker).
pillow_heif.register_heif_opener()

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
_WHITE = (255, 255, 255)


class ImageError(Exception):
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
        raise ImageError(path, "not an image, or a format photobatch cannot read") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file: {exc.strerror or exc}") from exc


def load_image(path: Path, target: int = MODEL_SIZE) -> Image.Image:
    """Decode ``path`` as an upright RGB image, at least ``target`` pixels on each side.

    Alpha is composited on white (a transparent PNG is a logo or screenshot on a light page, and
    black would make up content). The result is usually larger than ``target``; ``to_tensor``
    does the final resize.
    """
    path = Path(path)
    with open_image(path) as im:
        try:
            if im.format == "JPEG":
                # Picks the largest 1/2^k scale that keeps both sides >= target.
                im.draft("RGB", (target, target))
            im.load()
            orientation = _orientation(im)
            rgb = _to_rgb(im, path)
        except ImageError:
            raise
        except OSError as exc:
            problem = "truncated file" if "truncated" in str(exc) else "corrupt image data"
            raise ImageError(path, f"{problem}: {exc}") from None
        except Exception as exc:  # decoders raise anything on hostile input: report, don't crash
            raise ImageError(path, f"corrupt image data: {type(exc).__name__}: {exc}") from None
    return rgb.transpose(_ORIENT[orientation]) if orientation in _ORIENT else rgb


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
