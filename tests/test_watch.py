"""`photobatch watch` as a service: settles slow copies, follows moves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from photobatch.scan.watcher import Watcher


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows(index: Path, sql: str, *args: object) -> list[tuple]:
    if not index.exists():
        return []
    con = sqlite3.connect(index)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.fixture()
def watcher(tmp_path: Path):
    library = tmp_path / "photos"
    library.mkdir()
    index = tmp_path / "index.db"
    log = open(tmp_path / "watch.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "photobatch",
            "--index",
            str(index),
            "watch",
            "--settle",
            "2",
            "--no-sidecars",
            str(library),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: rows(index, "SELECT count(*) FROM scans") == [(1,)], what="catch-up scan")
    yield proc, library, index, tmp_path / "watch.log"
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_slow_copy_is_processed_once_after_it_settles_and_moves_keep_results(
    watcher, research_data: Path
) -> None:
    proc, library, index, log = watcher
    source = next((research_data / "flickr8k" / "images").glob("*.jpg")).read_bytes()
    target = library / "incoming.jpg"
    chunk = len(source) // 6 + 1
    with open(target, "wb") as out:
        for start in range(0, len(source), chunk):
            out.write(source[start : start + chunk])
            out.flush()
            time.sleep(0.7)  # a slow card reader: the file keeps growing for ~4 s
    finished = time.time()
    wait_for(
        lambda: rows(index, "SELECT status FROM photos WHERE path = ?", str(target)) == [("ok",)],
        what="the copied photo in the index",
    )
    analysed = rows(
        index, "SELECT a.analyzed_at, a.caption FROM analyses a JOIN photos p USING (sha256)"
    )
    assert len(analysed) == 1 and analysed[0][1]
    assert rows(index, "SELECT count(*) FROM photos") == [(1,)]
    # The batch's scan row is written just after its photo rows: wait for it, then count.
    analysed_once = "SELECT count(*) FROM scans WHERE summary LIKE '%\"analyzed\": 1%'"
    wait_for(lambda: rows(index, analysed_once) != [(0,)], what="the batch's scan row")
    summaries = [s for (s,) in rows(index, "SELECT summary FROM scans")]
    assert sum('"analyzed": 1' in s for s in summaries) == 1, "processed more than once"
    assert not any('"errors": 1' in s for s in summaries), "read while still being written"
    [(first_seen,)] = rows(index, "SELECT first_seen FROM photos")
    assert datetime.fromisoformat(first_seen).timestamp() >= int(finished) - 1

    moved = library / "2024" / "renamed.jpg"
    moved.parent.mkdir()
    target.rename(moved)
    wait_for(
        lambda: rows(index, "SELECT status FROM photos WHERE path = ?", str(moved)) == [("ok",)],
        what="the moved photo under its new path",
    )
    assert rows(index, "SELECT count(*) FROM analyses") == [(1,)]
    assert not any('"analyzed": 1' in s for (s,) in rows(index, "SELECT summary FROM scans")[2:])

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert not Path(str(index) + ".lock").read_text().strip(), "lock still claims a holder"


def test_sigint_exits_zero_and_releases_the_lock(watcher) -> None:
    proc, _, index, log = watcher
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, log.read_text()
    again = subprocess.run(
        [sys.executable, "-m", "photobatch", "--index", str(index), "status"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0


def test_a_vanished_root_is_not_a_deleted_library(tmp_path: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.updates: list[tuple[list[Path], list[Path]]] = []

        def update(self, changed: list[Path], gone: list[Path]) -> None:
            self.updates.append((changed, gone))

        def move(self, src: Path, dest: Path) -> int:
            return 0

    root = tmp_path / "usb-disk"
    root.mkdir()
    recorder = Recorder()
    w = Watcher(recorder, [root], settle=0)  # type: ignore[arg-type]
    w.pending.gone.add(root / "IMG_0001.jpg")
    os.rmdir(root)  # the drive is unmounted: everything below it "disappears"
    w._flush()
    assert recorder.updates == []


class _Models:
    """Stand-in models: the fallback under test is the watcher's, not the models'."""

    import torch

    device = torch.device("cpu")
    models = "stand-in"
    personal = SimpleNamespace(id=None)  # no personal head

    def load(self) -> None:
        """Nothing to load."""

    def describe(self, hashes: list[str], images: list[object]) -> list:
        from photobatch.core.records import Analysis

        tags = ["dog", "pets", "cute"]
        return [Analysis(h, ["dog"], "a dog", tags, models=self.models) for h in hashes]

    def repersonalize(self, analyses: list) -> list:
        return analyses  # no personal head


def test_watch_falls_back_to_polling_when_inotify_is_out_of_watches(
    tmp_path: Path,
    research_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import errno
    import shutil
    import threading

    from watchdog.observers.polling import PollingObserver

    from photobatch.core.config import load_config
    from photobatch.library.index import Index
    from photobatch.scan import watcher as watching
    from photobatch.scan.pipeline import Scanner

    class FullInotify(watching.Observer):  # type: ignore[misc,valid-type]
        def schedule(self, *args: object, **kwargs: object) -> object:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watching, "Observer", FullInotify)
    library = tmp_path / "photos"
    library.mkdir()
    config = load_config(None, index=tmp_path / "index.db")
    index = Index(config.index)
    scanner = Scanner(config, index, sidecars=False, progress=False, analyzer_factory=_Models)
    watch = Watcher(scanner, [library], settle=0.3)
    problems: list[BaseException] = []

    def copy_a_photo_then_stop() -> None:
        # The index belongs to the thread that runs the watcher; this one reads it with sqlite3.
        try:
            wait_for(lambda: watch.observer is not None, timeout=30, what="the observer")
            photo = next((research_data / "flickr8k" / "images").glob("*.jpg"))
            shutil.copyfile(photo, library / "new.jpg")
            wait_for(
                lambda: (
                    rows(config.index, "SELECT count(*) FROM photos WHERE status = 'ok'") == [(1,)]
                ),
                timeout=60,
                what="the new photo, seen by polling",
            )
        except BaseException as exc:
            problems.append(exc)
        finally:
            watch.stop()

    helper = threading.Thread(target=copy_a_photo_then_stop)
    with caplog.at_level("WARNING", logger=watching.log.name):
        helper.start()
        watch.run(tick=0.1)
        helper.join(timeout=30)
    assert not problems, problems
    assert isinstance(watch.observer, PollingObserver)
    assert "falling back to polling" in caplog.text
    assert [Path(r["path"]).name for r in index.export_rows()] == ["new.jpg"]
    index.close()
