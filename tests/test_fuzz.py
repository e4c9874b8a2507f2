"""Fuzzing: 1,000 mutated camera files scan without a crash, and every one is recorded.

The mutations are seeded, so a failure reproduces: bit flips (mostly in the first 64 kB, where
the headers and EXIF live), truncations, one format's header spliced onto another's body, and
garbage written into a JPEG's EXIF segment. They run through the real ``photobatch scan`` in one
subprocess, as a user would run it. Property tests then throw arbitrary bytes behind real
magic numbers at the EXIF reader and the decoder.
"""

from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photobatch.library.discovery import IMAGE_EXTENSIONS
from photobatch.library.imaging import ImageError, load_image
from photobatch.library.metadata import read_metadata

VARIANTS = 1000
SEED = 20240611


def flip_bits(rng: random.Random, data: bytes, sources: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 40)):
        limit = len(out) if rng.random() < 0.2 else min(len(out), 65536)
        out[rng.randrange(limit)] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes, sources: list[bytes]) -> bytes:
    return data[: rng.choice([0, 1, 2, 4, 16, 100, rng.randrange(len(data))])]


def splice(rng: random.Random, data: bytes, sources: list[bytes]) -> bytes:
    other = rng.choice(sources)
    cut = rng.randrange(4, min(4096, len(data), len(other)))
    return data[:cut] + other[cut:]


def corrupt_exif(rng: random.Random, data: bytes, sources: list[bytes]) -> bytes:
    """Overwrite part of the APP1 (EXIF) segment, or the start of the file if there is none."""
    start = data.find(b"\xff\xe1")
    if start < 0:
        return flip_bits(rng, data, sources)
    length = int.from_bytes(data[start + 2 : start + 4], "big")
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = start + 4 + rng.randrange(max(1, length - 4))
        size = rng.randint(1, 16)
        out[at : at + size] = rng.randbytes(size)
    return bytes(out[: len(data)])


MUTATIONS: list[Callable[[random.Random, bytes, list[bytes]], bytes]] = [
    flip_bits,
    truncate,
    splice,
    corrupt_exif,
]


def make_variants(samples: Path, root: Path) -> list[Path]:
    """Write the seeded variants under ``root``; the file keeps its source's extension."""
    files = sorted(
        p for p in samples.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    sources = [p.read_bytes() for p in files]
    rng = random.Random(SEED)
    root.mkdir()
    written = []
    for n in range(VARIANTS):
        pick = rng.randrange(len(files))
        mutation = MUTATIONS[n % len(MUTATIONS)]
        path = root / f"{n:04d}-{mutation.__name__}-{files[pick].name}"
        path.write_bytes(mutation(rng, sources[pick], sources))
        written.append(path)
    return written


def test_a_thousand_mutated_files_scan_without_a_crash(research_data: Path, tmp_path: Path) -> None:
    variants = make_variants(research_data / "exif-samples", tmp_path / "fuzzed")
    index = tmp_path / "index.db"
    scan = subprocess.run(
        [
            sys.executable,
            "-m",
            "photobatch",
            "--index",
            str(index),
            "scan",
            str(tmp_path / "fuzzed"),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert "Traceback" not in scan.stderr, scan.stderr[-3000:]
    export = subprocess.run(
        [sys.executable, "-m", "photobatch", "--index", str(index), "export", "--format", "csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(export.stdout))}
    assert set(rows) == {str(p) for p in variants}
    for path, row in rows.items():
        assert row["status"] in {"ok", "error"}, row
        if row["status"] == "error":
            assert row["error"].startswith(path + ": "), row
        else:  # analysed; grounding writes no caption for a mangled frame it cannot read
            assert row["caption_source"] in {"sat", "sat-weak", "concept", "scene", "none"}, row
    errors = sum(row["status"] == "error" for row in rows.values())
    assert 0 < errors < VARIANTS  # both paths were exercised
    assert f"{errors} unreadable" in scan.stdout


MAGIC = [
    b"\xff\xd8\xff\xe1",
    b"II*\x00",
    b"MM\x00*",
    b"\x89PNG\r\n\x1a\n",
    b"\x00\x00\x00\x18ftypheic",
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=2048))
def test_metadata_never_raises_on_arbitrary_bytes(
    tmp_path: Path, magic: bytes, body: bytes
) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(magic + body)
    meta = read_metadata(path)
    assert meta.orientation in range(1, 9)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    magic=st.sampled_from(MAGIC),
    body=st.binary(max_size=2048),
    ext=st.sampled_from([".jpg", ".tif", ".dng"]),
)
def test_decoding_arbitrary_bytes_fails_only_with_image_error(
    tmp_path: Path, magic: bytes, body: bytes, ext: str
) -> None:
    path = tmp_path / f"x{ext}"
    path.write_bytes(magic + body)
    try:
        img = load_image(path)
    except ImageError as exc:
        assert str(path) in str(exc)
    else:
        assert img.mode == "RGB"
