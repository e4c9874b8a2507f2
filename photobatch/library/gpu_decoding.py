"""JPEG decoding on the GPU for scans that run on CUDA (torchvision's nvJPEG ``decode_jpeg``).

On a GPU the models take a fraction of a millisecond per photo, and decoding 12 MP JPEGs on the
CPU becomes the whole cost of a scan. nvJPEG decodes a batch of them on the device, where the
squash to 224x224 and the normalisation follow without a copy back; the CPU workers only read
the files and check their headers.

Everything here is best-effort: a file nvJPEG should not or cannot decode (CMYK, over Pillow's
pixel limit, a corrupt stream) goes through Pillow like any other photo, so a photo's result
never depends on which path decoded it, beyond resampling noise.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from photobatch.library.imaging import MODEL_SIZE, PIXEL_MEAN, PIXEL_STD

log = logging.getLogger(__name__)


def read_jpeg(path: Path) -> bytes | None:
    """The bytes of a JPEG that nvJPEG may decode, or None when it should go through Pillow.

    The header is parsed (no pixels): CMYK and other unusual modes, files over Pillow's pixel
    limit (decompression bombs), unreadable files and non-JPEGs are left to the CPU path, which
    knows how to decode or report each of them.
    """
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            fits = (
                im.format == "JPEG"
                and im.mode in ("RGB", "L")
                and im.width * im.height <= (Image.MAX_IMAGE_PIXELS or 0)
            )
    except Exception:  # any problem is the Pillow path's to report
        return None
    return data if fits else None


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply EXIF ``orientation`` (1-8) to a ``(C, H, W)`` image, as Pillow's exif_transpose.

    2 mirrors, 3 turns 180 degrees, 4 flips; 5-8 swap width and height: 5 transposes, 6 turns a
    quarter clockwise, 7 transposes across the other diagonal, 8 turns a quarter anticlockwise.
    Unknown values leave the image as it is, as Pillow does.
    """
    if orientation in (5, 6, 7, 8):
        image = image.transpose(-1, -2)
    flips = {2: (-1,), 3: (-1, -2), 4: (-2,), 6: (-1,), 7: (-1, -2), 8: (-2,)}.get(orientation)
    return image.flip(flips) if flips else image


def squash(image: torch.Tensor, size: int = MODEL_SIZE) -> torch.Tensor:
    """``(3, H, W)`` uint8 -> ``(3, size, size)`` float32, squashed and normalised for the encoder.

    Antialiased bilinear resampling stands in for the CPU path's draft decode plus bicubic
    resize: both average the many source pixels behind each output pixel.
    """
    pixels = image.unsqueeze(0).float()
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(
            pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return ((pixels[0] - PIXEL_MEAN) / PIXEL_STD).contiguous()


class GpuJpegDecoder:
    """Batches of JPEG files' bytes -> preprocessed encoder inputs on one CUDA device."""

    def __init__(self, device: torch.device) -> None:
        # Imported here: PyPI's torchvision is built against CUDA torch and does not import next
        # to a CPU-only torch build, which the CPU path never needs it with.
        from torchvision.io import ImageReadMode, decode_jpeg

        self.device = device
        self._decode: Any = decode_jpeg
        self._mode = ImageReadMode.RGB

    def decode(
        self, blobs: Sequence[bytes], orientations: Sequence[int]
    ) -> list[torch.Tensor | None]:
        """One tensor per file, or ``None`` where nvJPEG failed (the caller uses Pillow)."""
        data = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) for blob in blobs]
        try:
            images: list[torch.Tensor | None] = list(
                self._decode(data, mode=self._mode, device=self.device)
            )
        except RuntimeError:  # one bad file fails the batch: find it by decoding one by one
            images = [self._one(d) for d in data]
        return [
            None if image is None else squash(upright(image, orientation))
            for image, orientation in zip(images, orientations, strict=True)
        ]

    def _one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return self._decode(data, mode=self._mode, device=self.device)
        except RuntimeError:
            return None


def gpu_jpeg_decoder(device: torch.device) -> GpuJpegDecoder | None:
    """A decoder for ``device`` when it is CUDA and torchvision can decode there, else None.

    Without one the scan still runs, decoding with Pillow on the CPU; one logged line says why,
    since on a fast GPU that is most of the scan's time.
    """
    if device.type != "cuda":
        return None
    try:
        return GpuJpegDecoder(device)
    except (ImportError, RuntimeError) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "torchvision":
            why = "torchvision is not installed (pip install 'photobatch[gpu]')"
        else:
            why = f"torchvision does not load beside torch {torch.__version__} ({exc})"
        log.warning("JPEGs are decoded on the CPU, not on %s: %s", device, why)
        return None
