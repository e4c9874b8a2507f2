"""Crash safety: ``kill -9`` a real scan at several moments, rescan, and nothing is lost.

A library of 60 distinct photos (Flickr8k photos re-encoded at different qualities) is scanned
with ``batch_size: 8`` in a subprocess that is killed -9: while the first batch's sidecars are
being written (before its commit), right after the first batch is committed, and mid-way. A last
scan then finishes. Every photo must be in the index exactly once with results, every content
analysed once, every sidecar whole (exiftool reads it, with the index's caption), no temp file
left beside the photos, and the originals untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from photobatch.core.config import SidecarConfig

PHOTOS = 60


def make_library(research_data: Path, root: Path) -> dict[str, str]:
    """60 distinct photos; returns name -> sha256 of the original bytes."""
    images = sorted((research_data / "flickr8k" / "images").iterdir())[:PHOTOS]
    root.mkdir()
    for n, source in enumerate(images):
        with Image.open(source) as im:
            im.convert("RGB").save(root / f"IMG_{n:04d}.jpg", quality=60 + n % 35)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}


def committed(index: Path) -> int:
    """Photos the index holds right now, read as any other client would during a scan."""
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def scan_and_kill(args: list[str], when: Callable[[], bool]) -> bool:
    """Start a scan and SIGKILL it once ``when()`` holds; False if it finished first."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if when():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    return False


def test_kill_9_at_any_moment_then_rescan_loses_nothing(
    research_data: Path, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    originals = make_library(research_data, root)
    index = tmp_path / "index.db"
    config = tmp_path / "config.yaml"
    config.write_text("batch_size: 8\n", encoding="utf-8")
    scan = [sys.executable, "-m", "photobatch", "--config", str(config), "--index", str(index)]
    scan += ["scan", str(root)]

    def first_sidecar() -> bool:
        return any(root.glob("*.xmp")) or any(root.glob(".*.tmp"))

    moments = {
        "writing the first sidecars": first_sidecar,
        "after the first commit": lambda: committed(index) >= 8,
        "mid-way": lambda: committed(index) >= PHOTOS // 2,
    }
    for moment, when in moments.items():
        assert scan_and_kill(scan, when), f"the scan finished before the kill {moment}"
        assert committed(index) < PHOTOS, moment

    final = subprocess.run(scan, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert "0 unreadable" in final.stdout

    with sqlite3.connect(index) as db:
        photos = db.execute("SELECT path, sha256, status FROM photos").fetchall()
        analysed = dict(db.execute("SELECT sha256, caption_source FROM analyses").fetchall())
        # What a sidecar describes: the caption when it is confident enough (grounding).
        captions = dict(
            db.execute(
                "SELECT photos.path, CASE WHEN caption_confidence >= ? THEN caption END "
                "FROM photos JOIN analyses USING (sha256)",
                [SidecarConfig().min_caption_confidence],
            ).fetchall()
        )
        tagged = {p for (p,) in db.execute(
            "SELECT path FROM photos JOIN analyses USING (sha256) WHERE hashtags != '[]'"
        )}  # fmt: skip
    # A photo with nothing to say (no caption shown, no hashtag) has no sidecar.
    saying = sorted(Path(p).name for p in captions if captions[p] or p in tagged)
    assert sorted(Path(p).name for p, _, _ in photos) == sorted(originals)
    assert {status for _, _, status in photos} == {"ok"}
    assert {sha for _, sha, _ in photos} == set(analysed)  # each content analysed exactly once
    assert len(analysed) == PHOTOS and all(analysed.values())

    sidecars = sorted(root.glob("*.xmp"))
    assert [p.name for p in sidecars] == [f"{name}.xmp" for name in saying]
    assert all(p.stat().st_size > 0 for p in sidecars)
    read = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Description", *map(str, sidecars)],
        capture_output=True,
        text=True,
    )
    assert read.returncode == 0, read.stderr  # every sidecar parses
    for entry in json.loads(read.stdout):
        photo = str(entry["SourceFile"]).removesuffix(".xmp")
        assert entry.get("Description") == captions[photo]

    assert sorted(p.name for p in root.iterdir()) == sorted(
        [*originals, *(f"{name}.xmp" for name in saying)]
    )  # no temp files left behind
    assert {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.jpg")
    } == originals


def test_a_killed_runs_temp_sidecar_is_removed_and_nothing_else(tmp_path: Path) -> None:
    from photobatch.core.config import load_config
    from photobatch.core.records import Analysis, PhotoRecord
    from photobatch.library.sidecars import SidecarSync

    photo = tmp_path / "IMG_0001.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    stale = tmp_path / ".IMG_0002.jpg.xmp.k3j_x9a2.tmp"  # write_atomic's name, from a killed run
    stale.write_bytes(b"<x:xmpmeta")
    theirs = tmp_path / ".darktable.k3j_x9a2.tmp"
    theirs.write_bytes(b"not ours")
    past = time.time() - 60
    for path in (stale, theirs):
        os.utime(path, (past, past))
    config = load_config(None, index=tmp_path / "index.db")
    analysis = Analysis("0" * 64, caption="a dark square", hashtags=["dark"])
    problems = SidecarSync(config.sidecars).write(
        PhotoRecord(photo, "0" * 64, "ok", analysis=analysis)
    )
    assert problems == []
    assert not stale.exists() and theirs.exists()
    assert (tmp_path / "IMG_0001.jpg.xmp").stat().st_size > 0
