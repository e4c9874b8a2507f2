"""Discovery: which files are photos, what is skipped, and content identity."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from photobatch.library.discovery import sha256_file, walk


def make(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_walk_finds_images_any_case_and_skips_hidden_and_sidecars(tmp_path: Path) -> None:
    wanted = [
        make(tmp_path / "a.jpg"),
        make(tmp_path / "B.JPEG"),
        make(tmp_path / "sub" / "c.Png"),
        make(tmp_path / "sub" / "deeper" / "d.tif"),
        make(tmp_path / "e.TIFF"),
        make(tmp_path / "f.webp"),
        make(tmp_path / "g.HEIC"),
        make(tmp_path / "h.heif"),
    ]
    make(tmp_path / "a.jpg.xmp")
    make(tmp_path / "a.xmp")
    make(tmp_path / "a.jpg.json")
    make(tmp_path / "notes.txt")
    make(tmp_path / ".hidden.jpg")
    make(tmp_path / ".thumbnails" / "t.jpg")
    found = sorted(f.path for f in walk([tmp_path]))
    assert found == sorted(wanted)


def test_walk_records_size_and_mtime(tmp_path: Path) -> None:
    photo = make(tmp_path / "a.jpg", b"12345")
    os.utime(photo, ns=(1_000_000_000, 2_000_000_000))
    [found] = walk([tmp_path])
    assert (found.size, found.mtime_ns) == (5, 2_000_000_000)


def test_walk_accepts_single_files_and_dedupes_overlapping_roots(tmp_path: Path) -> None:
    photo = make(tmp_path / "x" / "a.jpg")
    found = list(walk([tmp_path, tmp_path / "x", photo]))
    assert [f.path for f in found] == [photo]


def test_walk_survives_symlink_loops_and_unreadable_folders(tmp_path: Path) -> None:
    make(tmp_path / "a.jpg")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    locked = tmp_path / "locked"
    make(locked / "secret.jpg")
    locked.chmod(0)
    problems: list[Path] = []
    try:
        found = [f.path.name for f in walk([tmp_path], on_error=lambda p, e: problems.append(p))]
    finally:
        locked.chmod(0o755)
    assert "a.jpg" in found
    if os.geteuid() != 0:  # root reads anything; the loop check above still holds
        assert problems == [locked]


def test_sha256_is_the_content_hash(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    photo = make(tmp_path / "big.jpg", data)
    assert sha256_file(photo) == hashlib.sha256(data).hexdigest()
