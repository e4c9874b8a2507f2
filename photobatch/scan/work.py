"""One photo's work on its way through a scan, whichever engine runs it: hashing and EXIF, then
decoding for the encoder.

Pillow, hashlib and file reads release the GIL, so a few threads keep the models fed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from photobatch.core.records import Analysis, FoundFile, PhotoMetadata
from photobatch.library.discovery import read_problem, sha256_file
from photobatch.library.metadata import read_metadata

if TYPE_CHECKING:
    import torch


# Files the GPU decoder may take (it checks their headers); the names are matched like discovery.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


@dataclass
class Item:
    """One changed or new file on its way through a batch."""

    found: FoundFile
    is_new: bool
    sha256: str | None = None
    metadata: PhotoMetadata | None = None
    error: str | None = None
    image: torch.Tensor | None = None
    jpeg: bytes | None = None  # the file's bytes, when the GPU decodes it


@dataclass
class Processed:
    """A batch back from an engine: every item identified (hash, EXIF or its error), the items
    the models were asked for (``analysed``, a failed decode as their ``error``) and their
    results, in the order of the ones that decoded."""

    items: list[Item]
    analysed: list[Item]
    analyses: list[Analysis]


# The scan's choice, given a batch of identified items, of those that need the models.
Pick = Callable[[list[Item]], list[Item]]


def identify(item: Item) -> None:
    """Content hash and EXIF for one file (runs in the pool)."""
    path = item.found.path
    try:
        item.sha256 = sha256_file(path)
    except OSError as exc:
        item.error = read_problem(path, exc)
        return
    item.metadata = read_metadata(path)


def decode(item: Item) -> None:
    """Decode and preprocess one photo for the encoder (runs in the pool); what Pillow warns
    about it is added to its metadata's warning."""
    from photobatch.library.imaging import ImageError, load_image, pillow_warnings, to_tensor

    try:
        with pillow_warnings() as noted:
            item.image = to_tensor(load_image(item.found.path))
    except ImageError as exc:
        item.error = str(exc)
    except OSError as exc:
        item.error = read_problem(item.found.path, exc)
    metadata = item.metadata or PhotoMetadata()
    new = [n for n in noted if n not in (metadata.warning or "")]
    if new:
        item.metadata = replace(metadata, warning="; ".join(filter(None, [metadata.warning, *new])))


def read_for_gpu(item: Item) -> None:
    """Read a JPEG for the GPU decoder (runs in the pool); odd ones are decoded by Pillow."""
    from photobatch.library.gpu_decoding import read_jpeg

    item.jpeg = read_jpeg(item.found.path)
    if item.jpeg is None:
        decode(item)
