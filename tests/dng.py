"""A minimal, valid DNG writer for tests: no RAW samples may be downloaded, so we make our own.

The file is laid out the way cameras and Adobe's converter do it: IFD0 holds the JPEG preview
(NewSubFileType 1) with Make, Model, Orientation, DNGVersion and an EXIF IFD; its SubIFD holds
the raw CFA data (16-bit, uncompressed, RGGB). LibRaw opens it as a DNG and exiftool and exifread
read its tags, which is what photobatch relies on for real camera files.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image

# TIFF field types: BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SRATIONAL.
_FORMATS = {1: "B", 2: "B", 3: "H", 4: "I", 7: "B"}
Entries = dict[int, tuple[int, list[int] | list[tuple[int, int]] | bytes]]


def _ifd(entries: Entries, at: int) -> bytes:
    """One IFD placed at offset ``at``, its out-of-line values right after it."""
    extra_at = at + 2 + 12 * len(entries) + 4
    head, extra = struct.pack("<H", len(entries)), b""
    for tag in sorted(entries):
        kind, value = entries[tag]
        if kind in (5, 10):
            raw = b"".join(struct.pack("<ii" if kind == 10 else "<II", *v) for v in value)
        elif isinstance(value, bytes):
            raw = value
        else:
            raw = struct.pack(f"<{len(value)}{_FORMATS[kind]}", *value)
        count = len(value)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", extra_at + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        head += struct.pack("<HHI", tag, kind, count) + field
    return head + struct.pack("<I", 0) + extra


def _ascii(text: str) -> tuple[int, bytes]:
    return 2, text.encode() + b"\0"


def write_dng(
    path: Path,
    preview: Image.Image | None,
    *,
    orientation: int = 1,
    make: str = "Canon",
    model: str = "Canon EOS 5D Mark IV",
    taken: str = "2021:05:06 07:08:09",
    raw_size: tuple[int, int] = (64, 48),
) -> None:
    """Write a DNG at ``path``; ``preview`` (RGB) is embedded as a baseline JPEG, or none."""
    width, height = raw_size
    # A grey-ish RGGB mosaic with some structure, so a develop gives real pixels.
    cfa = b"".join(
        struct.pack("<H", 1000 + 40 * ((x // 8 + y // 8) % 2) * 50 + (x % 2) * 300)
        for y in range(height)
        for x in range(width)
    )
    jpeg = b""
    if preview is not None:
        buffer = io.BytesIO()
        preview.convert("RGB").save(buffer, "JPEG", quality=90)
        jpeg = buffer.getvalue()
    blobs = b"\0" * 8 + jpeg + cfa  # header placeholder, then image data, then the IFDs
    jpeg_at, cfa_at = 8, 8 + len(jpeg)
    raw_ifd: Entries = {
        254: (4, [0]),
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [16]),
        259: (3, [1]),
        262: (3, [32803]),
        273: (4, [cfa_at]),
        277: (3, [1]),
        278: (4, [height]),
        279: (4, [len(cfa)]),
        284: (3, [1]),
        33421: (3, [2, 2]),
        33422: (1, [0, 1, 1, 2]),
        50714: (4, [0]),
        50717: (4, [16383]),
    }
    exif_ifd: Entries = {36867: _ascii(taken), 36868: _ascii(taken)}
    raw_ifd_at = len(blobs)
    raw_bytes = _ifd(raw_ifd, raw_ifd_at)
    exif_at = raw_ifd_at + len(raw_bytes)
    exif_bytes = _ifd(exif_ifd, exif_at)
    ifd0_at = exif_at + len(exif_bytes)
    ifd0: Entries = {
        271: _ascii(make),
        272: _ascii(model),
        274: (3, [orientation]),
        330: (4, [raw_ifd_at]),
        34665: (4, [exif_at]),
        50706: (1, [1, 4, 0, 0]),
        50708: _ascii(f"{make} {model}"),
        50721: (10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]),
    }
    if preview is not None:
        ifd0 |= {
            254: (4, [1]),
            256: (4, [preview.width]),
            257: (4, [preview.height]),
            258: (3, [8, 8, 8]),
            259: (3, [7]),
            262: (3, [6]),
            273: (4, [jpeg_at]),
            277: (3, [3]),
            278: (4, [preview.height]),
            279: (4, [len(jpeg)]),
        }
    data = blobs + raw_bytes + exif_bytes + _ifd(ifd0, ifd0_at)
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd0_at) + data[8:])
