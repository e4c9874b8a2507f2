"""`photobatch watch` as a service: settles slow copies, follows moves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
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

    def analyze(self, hashes: list[str], images: list[object]) -> list:
        from photobatch.core.records import Analysis

        tags = ["dog", "pets", "cute"]
        return [Analysis(h, ["dog"], "a dog", tags, models=self.models) for h in hashes]


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


def run_in_process(
    tmp_path: Path,
    roots: list[Path],
    script: Callable[[Watcher, Path], None],
    analyzer: type = _Models,
    batch_size: int = 32,
) -> Watcher:
    """Run a watcher (stand-in models, 0.3 s settle) in this thread while ``script`` acts on the
    folders from another and then stops it; ``script`` gets the watcher and the index's path."""
    import threading
    from dataclasses import replace

    from photobatch.core.config import load_config
    from photobatch.library.index import Index
    from photobatch.scan.pipeline import Scanner

    config = replace(load_config(None, index=tmp_path / "index.db"), batch_size=batch_size)
    index = Index(config.index)
    scanner = Scanner(config, index, sidecars=False, progress=False, analyzer_factory=analyzer)
    watch = Watcher(scanner, roots, settle=0.3)
    problems: list[BaseException] = []

    def act() -> None:
        try:
            script(watch, config.index)
        except BaseException as exc:
            problems.append(exc)
        finally:
            watch.stop()

    helper = threading.Thread(target=act)
    helper.start()
    try:
        watch.run(tick=0.1)
    finally:
        helper.join(timeout=60)
        index.close()
    assert not problems, problems
    return watch


def indexed(index: Path) -> set[str]:
    return {Path(p).name for (p,) in rows(index, "SELECT path FROM photos WHERE status = 'ok'")}


def test_photos_that_arrive_during_the_catch_up_scan_are_indexed(
    tmp_path: Path, research_data: Path
) -> None:
    """The catch-up scan walks the folder first and analyses after: what arrives in between
    was missed until a restart, when the watch started only after the catch-up."""
    import shutil
    import threading

    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))
    library = tmp_path / "photos"
    library.mkdir()
    for source in photos[:4]:
        shutil.copyfile(source, library / source.name)
    analysing, arrived = threading.Event(), threading.Event()

    class Slow(_Models):
        def analyze(self, hashes: list[str], images: list[object]) -> list:
            analysing.set()
            arrived.wait(timeout=60)  # the catch-up goes on only once the new photos are in
            return super().analyze(hashes, images)

    late = [source.name for source in photos[10:15]]

    def copy_during_the_catch_up(watch: Watcher, index: Path) -> None:
        assert analysing.wait(timeout=60), "the catch-up never reached the models"
        for source in photos[10:15]:
            shutil.copyfile(source, library / source.name)
        arrived.set()
        wait_for(lambda: set(late) <= indexed(index), timeout=60, what="the late photos")

    run_in_process(tmp_path, [library], copy_during_the_catch_up, Slow, batch_size=1)
    assert indexed(tmp_path / "index.db") == {p.name for p in photos[:4]} | set(late)


def test_a_root_deleted_and_created_again_is_watched_again_and_caught_up(
    tmp_path: Path, research_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a removable disk does under /media/$USER on unmount and mount: the folder goes and
    a new one comes. While it is gone the log says so once; when it is back, photos added to it
    meanwhile and afterwards are indexed."""
    import shutil

    from photobatch.scan import watcher as watching

    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))
    disk = tmp_path / "disk"
    disk.mkdir()
    shutil.copyfile(photos[0], disk / photos[0].name)

    def unplug_and_plug_again(watch: Watcher, index: Path) -> None:
        wait_for(lambda: indexed(index) == {photos[0].name}, timeout=60, what="the catch-up")
        shutil.rmtree(disk)
        time.sleep(2)  # twenty ticks with the root gone
        replugged = tmp_path / "elsewhere"  # the disk, with a photo added on another computer
        replugged.mkdir()
        shutil.copyfile(photos[0], replugged / photos[0].name)
        shutil.copyfile(photos[1], replugged / photos[1].name)
        replugged.rename(disk)
        wait_for(lambda: photos[1].name in indexed(index), timeout=60, what="the catch-up")
        shutil.copyfile(photos[2], disk / photos[2].name)  # and one copied in afterwards
        wait_for(lambda: photos[2].name in indexed(index), timeout=60, what="the new photo")

    with caplog.at_level("INFO", logger=watching.log.name):
        run_in_process(tmp_path, [disk], unplug_and_plug_again)
    gone = [r for r in caplog.records if "watch root gone" in r.getMessage()]
    back = [r for r in caplog.records if "watch root back" in r.getMessage()]
    assert (len(gone), len(back)) == (1, 1), caplog.text
    assert indexed(tmp_path / "index.db") == {p.name for p in photos[:3]}
    assert rows(tmp_path / "index.db", "SELECT count(*) FROM photos WHERE status = 'missing'") == [
        (0,)
    ]


def test_a_stop_during_the_catch_up_ends_it_after_the_batch_in_hand(
    tmp_path: Path, research_data: Path
) -> None:
    import shutil
    import threading

    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:20]
    library = tmp_path / "photos"
    library.mkdir()
    for source in photos:
        shutil.copyfile(source, library / source.name)
    analysing, stopped = threading.Event(), threading.Event()

    class Slow(_Models):
        def analyze(self, hashes: list[str], images: list[object]) -> list:
            analysing.set()
            stopped.wait(timeout=60)
            return super().analyze(hashes, images)

    def stop_during_the_catch_up(watch: Watcher, index: Path) -> None:
        assert analysing.wait(timeout=60)
        watch.stop()  # what SIGTERM and Ctrl-C call
        stopped.set()

    watch = run_in_process(tmp_path, [library], stop_during_the_catch_up, Slow, batch_size=2)
    done = indexed(tmp_path / "index.db")
    assert 2 <= len(done) < len(photos), done
    assert watch.stopping.is_set()


def test_sigterm_during_the_catch_up_of_a_real_watch_ends_it_after_the_batch_in_hand(
    tmp_path: Path, research_data: Path
) -> None:
    """The catch-up used to ignore SIGTERM until every photo was analysed (350 of them, in the
    issue); systemd's stop then waited, and killed it."""
    import shutil

    library = tmp_path / "photos"
    library.mkdir()
    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:160]
    for source in photos:
        shutil.copyfile(source, library / source.name)
    index = tmp_path / "index.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "photobatch", "--index", str(index), "watch", "--no-sidecars",
         str(library)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: rows(index, "SELECT count(*) FROM photos") not in ([], [(0,)]), 300)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [(done,)] = rows(index, "SELECT count(*) FROM photos")
    assert 0 < done < len(photos), done
    assert "stopped before the end: the next scan does the rest" in err
