"""How fast the review page answers: thumbnails of 12 MP camera JPEGs, and the first screen of a
10,000-photo index, over real HTTP as a browser asks for them.

Run: ``python -m photobatch.research.review_bench [--index-photos 10000] [--photos 24]``.

Method. ``--photos`` camera JPEGs of 12 MP (``bench_photos``, about 3 MB each) are made once and
kept in ``--workdir``. An index of ``--index-photos`` rows is written with the library's own
``write_batch`` (no model runs: what is timed is the page, not the scan): the last ``--photos``
rows (the last page, which nothing prefetches) are those photos with their real sha256, the
others hard links to them under synthetic hashes, 100 to a folder, with Flickr8k's human
captions, confidences spread over 0-1 and ten hashtags each, so the page queries, pages and
renders an index of that size. A review server is started on a free port with a fresh thumbnail
cache, and timed from a client in this process:

- *first visit*: right after the server starts (no head start for its prefetch of page 1),
  ``GET /`` of the whole index (page 1 of 48 cards, server-side paging) and the thumbnails a
  1400x1000 window shows (``VISIBLE``; the page's images load lazily), fetched on 6 connections
  as a browser does; then the rest of page 1's 48;
- *next page*: page 2 and its thumbnails once the server has made them while page 1 was read;
- *thumbnail, first*: each real photo's first ``/thumb/`` request (decode with EXIF orientation,
  resize, JPEG, cache write); *cached*: the same requests again;
- page 1's HTML (median of 5) and with its 48 cached thumbnails, the last page, a search.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from photobatch.core.config import Config
from photobatch.core.records import Analysis, FoundFile, PhotoMetadata, PhotoRow
from photobatch.library.discovery import sha256_file
from photobatch.library.index import Index
from photobatch.library.thumbnails import Thumbnails
from photobatch.research.bench import DEFAULT_WORKDIR, _fresh_db, _link_or_copy
from photobatch.research.bench_photos import make_library
from photobatch.research.data import research_data
from photobatch.review.server import ReviewServer

VISIBLE = 12  # cards a 1400x1000 window shows at first: three rows of four


def build_index(
    workdir: Path, photos: list[Path], n: int, captions: Path
) -> tuple[Path, list[str]]:
    """An index of ``n`` rows over links to ``photos``; returns it and the real photos' hashes."""
    with captions.open(encoding="utf-8") as fh:
        texts = [row["caption"].strip() for row in csv.DictReader(fh)][::5]
    root = workdir / "review-library"
    shutil.rmtree(root, ignore_errors=True)
    real = [sha256_file(p) for p in photos]
    db = _fresh_db(workdir / "review-bench.db")
    with Index(db) as index:
        rows, analyses = [], []
        for i in range(n):
            path = root / f"{i // 100:03d}" / f"IMG_{i:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(photos[i % len(photos)], path)
            first_real = n - len(photos)  # on the last page, which nothing prefetches
            sha = real[i - first_real] if i >= first_real else f"{i:064x}"
            text = texts[i % len(texts)]
            tags = [w.lower() for w in text.split() if len(w) > 3][:10]
            taken = PhotoMetadata(taken_at=f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00")
            rows.append(PhotoRow(FoundFile(path, 3_000_000, i), "ok", sha, taken))
            analyses.append(
                Analysis(
                    sha,
                    labels=["seashore", "lakeside"],
                    caption=text,
                    caption_confidence=(i * 37 % 100) / 100,
                    caption_source="sat",
                    hashtags=tags,
                    candidates=tags,
                    hashtag_scores={t: 0.5 for t in tags},
                    models="bench",
                )
            )
            if len(rows) == 500 or i == n - 1:
                index.write_batch(rows, analyses)
                rows, analyses = [], []
    return db, real


class Client:
    def __init__(self, server: ReviewServer) -> None:
        self.html = 0.0
        self.port = server.port
        self.cookie = f"{server.cookie_name}={server.library.token}"

    def get(self, path: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.request(
            "GET", path, headers={"Host": f"127.0.0.1:{self.port}", "Cookie": self.cookie}
        )
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return time.perf_counter() - start, body

    def screen(self, path: str, cards: int = 48) -> float:
        """A page and the thumbnails of its first ``cards`` cards, six at a time, as a browser
        loads them (the page's own time goes to ``self.html``)."""
        start = time.perf_counter()
        self.html, page = self.get(path)
        thumbs = [part.split('"', 1)[0] for part in page.decode().split('<img src="')[1:]]
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(self.get, thumbs[:cards]))
        return time.perf_counter() - start


def settle(cache: Path, thumbnails: int) -> None:
    """Wait (a minute at most) until the cache holds this many thumbnails."""
    deadline = time.monotonic() + 60
    while len(list(cache.rglob("*.jpg"))) < thumbnails and time.monotonic() < deadline:
        time.sleep(0.2)


def run(workdir: Path, index_photos: int, photos: int) -> dict[str, object]:
    data = research_data()
    made = make_library(workdir, photos, data / "flickr8k" / "images")
    db, real = build_index(workdir, made, index_photos, data / "flickr8k" / "captions.csv")
    cache = workdir / "review-thumbnails"
    shutil.rmtree(cache, ignore_errors=True)
    server = ReviewServer(Config(index=db), [], sidecars=False, thumbnails=Thumbnails(cache))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client(server)
    try:
        visible_cold = client.screen("/", VISIBLE)  # the browser is there at once
        page_first = client.html
        rest_cold = client.screen("/")
        pages = -(-index_photos // 48)
        settle(cache, 2 * 48)  # the user looks at page 1 while page 2 is made
        next_page = client.screen("/?page=2")
        settle(cache, 3 * 48)  # and page 3: then the server is idle
        first = [client.get(f"/thumb/{sha}")[0] for sha in real]
        cached = [client.get(f"/thumb/{sha}")[0] for sha in real]
        page_warm = statistics.median(client.get("/")[0] for _ in range(5))
        screen_warm = statistics.median(client.screen("/") for _ in range(3))
        last_page = client.get(f"/?page={pages}")[0]
        search = client.get("/?q=dog")[0]
    finally:
        server.shutdown()
        server.server_close()
    ms = lambda seconds: round(seconds * 1000, 1)  # noqa: E731
    return {
        "index_photos": index_photos,
        "photos_12mp": photos,
        "page_1_first_request_ms": ms(page_first),
        "page_1_median_ms": ms(page_warm),
        "last_page_ms": ms(last_page),
        "search_dog_ms": ms(search),
        f"page_1_and_{VISIBLE}_visible_cold_thumbnails_ms": ms(visible_cold),
        "then_page_1_and_all_48_thumbnails_ms": ms(rest_cold),
        "page_1_and_48_cached_thumbnails_ms": ms(screen_warm),
        "page_2_and_48_thumbnails_after_page_1_ms": ms(next_page),
        "thumbnail_first_median_ms": ms(statistics.median(first)),
        "thumbnail_first_max_ms": ms(max(first)),
        "thumbnail_cached_median_ms": ms(statistics.median(cached)),
        "thumbnail_cached_max_ms": ms(max(cached)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-photos", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=24, help="12 MP JPEGs to make and time")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    print(json.dumps(run(args.workdir, args.index_photos, args.photos), indent=2))


if __name__ == "__main__":
    main()
