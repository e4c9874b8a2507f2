"""`photobatch review`, `report --html` and the review state, on real photos, over real HTTP.

One scan of a few Flickr8k photos and an EXIF-rotated camera photo is shared by the module. The
review server runs in a thread and every request is a real HTTP request on its socket; sidecars
are read back with exiftool, the index with the library, the sheet as the file a browser gets.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import interruptible
from click.testing import CliRunner
from exiftool_helpers import keywords_and_description as read_sidecar
from PIL import Image

from photobatch.cli import cli
from photobatch.core.config import load_config
from photobatch.core.records import Analysis, PhotoRecord, Review
from photobatch.library.index import Index
from photobatch.library.thumbnails import Thumbnails
from photobatch.review.server import ReviewServer

FLICKR = (
    "1000268201_693b08cb0e.jpg",
    "1001773457_577c3a7d70.jpg",
    "1002674143_1b742ab4b8.jpg",
    "1003163366_44323f5815.jpg",
    "1007129816_e794419615.jpg",
    "1007320043_627395c3d8.jpg",
)
USER_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:subject><rdf:Bag><rdf:li>grandma</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def subjects(sidecar: Path) -> list[str]:
    return read_sidecar(sidecar)["Subject"]


class Library:
    """A scanned folder, its index and config, and a review server over it."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.index_path, self.config = root, tmp / "index.db", tmp / "config.yaml"
        self.configure(beam_size=5)

    def configure(self, beam_size: int, write: str = "auto") -> None:
        self.config.write_text(
            f"captioner:\n  beam_size: {beam_size}\nsidecars:\n  write: {write}\n",
            encoding="utf-8",
        )

    def cli(self, *args: str) -> str:
        base = ["--config", str(self.config), "--index", str(self.index_path)]
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output

    def index(self) -> Index:
        return Index(self.index_path)

    def sha(self, name: str) -> str:
        with self.index() as index:
            record = index.record(self.root / name)
        assert record is not None and record.sha256
        return record.sha256

    def rows(self, *options: str) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.cli("export", "--format", "json", *options))
        return {Path(row["path"]).name: row for row in rows}

    @property
    def settings(self) -> Any:
        return load_config(self.config, index=self.index_path)


@pytest.fixture(scope="module")
def library(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Library:
    tmp = tmp_path_factory.mktemp("review")
    root = tmp / "photos"
    root.mkdir()
    for name in FLICKR:
        shutil.copyfile(research_data / "flickr8k" / "images" / name, root / name)
    rotated = research_data / "exif-samples" / "jpg" / "orientation" / "portrait_6.jpg"
    shutil.copyfile(rotated, root / "portrait_6.jpg")
    (root / f"{FLICKR[3]}.xmp").write_text(USER_XMP, encoding="utf-8")
    lib = Library(root, tmp)
    lib.cli("scan", "-q", str(root))
    return lib


class Client:
    """Real HTTP requests to a review server, with or without its credentials."""

    def __init__(self, server: ReviewServer) -> None:
        self.server = server
        self.port = server.port
        self.host = f"127.0.0.1:{self.port}"
        self.cookie = f"{server.cookie_name}={server.library.token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        host: str | None = None,
        cookie: str | None = None,
        csrf: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Host": self.host if host is None else host}  # "": no Host header at all
        if cookie != "":
            sent["Cookie"] = cookie or self.cookie
        if method == "POST":
            sent["Content-Type"] = "application/json"
            if csrf != "":
                sent["X-CSRF-Token"] = csrf or self.server.library.csrf
        sent.update(headers or {})
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None and method == "POST":
            data = json.dumps(body).encode()
        if data is not None:
            sent["Content-Length"] = str(len(data))
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            if value:
                connection.putheader(name, value)
        connection.endheaders(data)
        response = connection.getresponse()
        content = response.read()
        connection.close()
        return response.status, response.headers, content

    def review(self, sha256: str, **body: str) -> dict[str, Any]:
        status, _, content = self.request("POST", f"/api/review/{sha256}", body=body)
        assert status == 200, content
        return json.loads(content)


@pytest.fixture(scope="module")
def server(library: Library) -> Iterator[ReviewServer]:
    running = ReviewServer(library.settings, [])
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(scope="module")
def client(server: ReviewServer) -> Client:
    return Client(server)


def test_first_visit_trades_the_token_for_a_cookie_and_shows_every_photo(
    client: Client, library: Library
) -> None:
    status, headers, _ = client.request("GET", f"/?token={client.server.library.token}", cookie="")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(client.cookie + ";")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, page = client.request("GET", "/")
    assert status == 200 and headers["Content-Security-Policy"].startswith("default-src 'none'")
    html = page.decode()
    assert len(re.findall(r'<article class="card', html)) == len(FLICKR) + 1
    assert "A little girl in a pink dress" in html  # a caption the scan wrote
    assert re.search(r'class="chip (photo|habit)"[^>]*>#\w+<span class="score">[01]\.\d\d', html)
    assert client.server.library.csrf in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing off this server


def bad_requests(client: Client, sha256: str) -> list[tuple[str, tuple[int, Any, bytes]]]:
    """Requests a web page elsewhere, another user or a rebinding attack could send."""
    token = client.server.library.token
    port = client.port
    wrong = f"{client.server.cookie_name}={'x' * len(token)}"
    review = f"/api/review/{sha256}"
    approve = {"action": "approve"}
    cases = {
        "page without token": ("GET", "/", {"cookie": ""}),
        "page with wrong token": ("GET", "/", {"cookie": wrong}),
        "page with token of another port's cookie": (
            "GET",
            "/",
            {"cookie": f"photobatch-review-{port + 1}={token}"},
        ),
        "token in query on a thumbnail": ("GET", f"/thumb/{sha256}?token={token}", {"cookie": ""}),
        "thumbnail without token": ("GET", f"/thumb/{sha256}", {"cookie": ""}),
        "script without token": ("GET", "/static/review.js", {"cookie": ""}),
        "attention without token": ("GET", f"/attention/{sha256}", {"cookie": ""}),
        "write without token": ("POST", review, {"cookie": "", "body": approve}),
        "foreign host": ("GET", "/", {"host": f"evil.example:{port}"}),
        "rebinding host, right port": ("GET", "/", {"host": f"attacker.localhost.example:{port}"}),
        "host of another port": ("GET", "/", {"host": f"127.0.0.1:{port + 1}"}),
        "host without port": ("GET", "/", {"host": "127.0.0.1"}),
        "no host header": ("GET", "/", {"host": ""}),
        "foreign host with token in query": (
            "GET",
            f"/?token={token}",
            {"host": f"evil.example:{port}", "cookie": ""},
        ),
        "foreign host write": ("POST", review, {"host": f"evil.example:{port}", "body": approve}),
        "write without CSRF token": ("POST", review, {"csrf": "", "body": approve}),
        "write with wrong CSRF token": ("POST", review, {"csrf": "x" * 43, "body": approve}),
        "write with the session token as CSRF": ("POST", review, {"csrf": token, "body": approve}),
        "write from another origin": (
            "POST",
            review,
            {"body": approve, "headers": {"Origin": "http://evil.example"}},
        ),
        "write as a form": (
            "POST",
            review,
            {"body": approve, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
        "approve all without CSRF token": (
            "POST",
            "/api/approve-all",
            {"csrf": "", "body": {"ids": [sha256], "min_confidence": 0}},
        ),
        "write with a body that is not JSON": (
            "POST",
            review,
            {"body": b"not json!"},
        ),
        "approve all with a list for a number": (
            "POST",
            "/api/approve-all",
            {"body": {"ids": [sha256], "min_confidence": [0]}},
        ),
        "a path instead of an id": ("GET", "/thumb/..%2f..%2f..%2fetc%2fpasswd", {}),
        "a path traversal": ("GET", "/thumb/../../../../etc/passwd", {}),
        "an absolute path": ("GET", "/large//etc/passwd", {}),
        "a static file outside the assets": ("GET", "/static/../server.py", {}),
        "an id not in the index": ("GET", f"/thumb/{'0' * 64}", {}),
        "an upper-case id": ("GET", f"/thumb/{sha256.upper()}", {}),
    }
    answers = []
    for name, (method, path, options) in cases.items():
        answers.append((name, client.request(method, path, **options)))
    return answers


def test_filters_and_search_choose_the_cards(client: Client, library: Library) -> None:
    def shown(query: str) -> set[str]:
        status, _, page = client.request("GET", "/?" + query)
        assert status == 200
        return set(re.findall(r'data-id="([0-9a-f]{64})"', page.decode()))

    everything = shown("")
    with library.index() as index:
        dogs = {library.sha(Path(hit.path).name) for hit in index.search("dog", 100)}
    assert dogs and shown("q=dog") == dogs & everything
    assert shown("q=dog&show=rejected") <= dogs
    assert shown(f"folder={library.root}") == everything
    assert shown(f"folder={library.root / 'nowhere'}") == set()
    assert shown("from=2999-01-01") == set()  # no photo taken then (or without a date)


def test_every_bad_request_is_refused(client: Client, library: Library) -> None:
    sha256 = library.sha(FLICKR[0])
    before = read_sidecar(library.root / f"{FLICKR[0]}.xmp")
    answers = bad_requests(client, sha256)
    succeeded = [name for name, (status, _, _) in answers if status < 400]
    assert succeeded == [], succeeded
    assert len(answers) >= 25
    for name, (_, headers, content) in answers:
        assert headers["Content-Security-Policy"].startswith("default-src 'none'"), name
        assert b"root:" not in content and b"import" not in content, name
    with library.index() as index:
        assert index.review(sha256) is None  # no write got through
    assert read_sidecar(library.root / f"{FLICKR[0]}.xmp") == before
    # The same requests with the credentials work: the gate refused them for the right reason.
    assert client.request("GET", f"/thumb/{sha256}")[0] == 200
    assert client.request("GET", "/static/review.js")[0] == 200


def test_listens_on_loopback_only(server: ReviewServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    assert server.socket.getsockname()[0] == "127.0.0.1"


def test_edits_reach_the_sidecars_and_survive_reanalysis_with_another_model(
    client: Client, library: Library
) -> None:
    approved, edited, tagged, rejected = (library.sha(name) for name in FLICKR[:3] + FLICKR[3:4])
    rows = library.rows()
    model_tags = rows[FLICKR[2]]["hashtags"].split()
    dropped = model_tags[0].lstrip("#")
    client.review(approved, action="approve")
    client.review(edited, action="caption", text="Two dogs play on the road")
    client.review(tagged, action="remove", text=dropped)
    answer = client.review(tagged, action="add", text="#Summer-Days, #myDog")
    assert "#summerdays" in answer["card"] and "#mydog" in answer["card"]
    client.review(rejected, action="reject")
    client.review(edited, action="post", text="Best friends 🐶")

    before = library.rows()
    assert before[FLICKR[0]]["review"] == "approved"
    sidecar = library.root / f"{FLICKR[1]}.xmp"
    assert read_sidecar(sidecar)["Description"] == "Two dogs play on the road"
    assert dropped not in subjects(library.root / f"{FLICKR[2]}.xmp")
    assert {"summerdays", "mydog"} <= set(subjects(library.root / f"{FLICKR[2]}.xmp"))
    assert subjects(library.root / f"{FLICKR[3]}.xmp") == ["grandma"]  # rejected: only theirs

    library.configure(beam_size=3)  # another model version: every photo is analysed again
    summary = library.cli("scan", "--reanalyse", str(library.root))
    assert f"{len(FLICKR) + 1} re-analysed" in summary or "; 7 analysed" in summary
    after = library.rows()
    for name in FLICKR[:4]:
        # The edited and the re-tagged photo keep the models' hashtags, which another beam may
        # change (their caption's words); the user's changes to them are checked below.
        columns = ("caption", "post_text", "review")
        if name not in (FLICKR[1], FLICKR[2]):
            columns += ("hashtags",)
        for column in columns:
            assert after[name][column] == before[name][column], (name, column)
    assert after[FLICKR[0]]["review"] == "approved"
    assert after[FLICKR[1]]["caption"] == "Two dogs play on the road"
    assert after[FLICKR[1]]["post_text"] == "Best friends 🐶"
    assert after[FLICKR[1]]["model_caption"] != "Two dogs play on the road"
    assert f"#{dropped}" not in after[FLICKR[2]]["hashtags"].split()
    assert read_sidecar(sidecar)["Description"] == "Two dogs play on the road"
    assert {"summerdays", "mydog"} <= set(subjects(library.root / f"{FLICKR[2]}.xmp"))
    assert dropped not in subjects(library.root / f"{FLICKR[2]}.xmp")
    assert subjects(library.root / f"{FLICKR[3]}.xmp") == ["grandma"]
    approved_row = after[FLICKR[0]]
    assert subjects(library.root / f"{FLICKR[0]}.xmp") == [
        t.lstrip("#") for t in approved_row["hashtags"].split()
    ]

    # The page shows the models' new words beside the user's own caption, as a suggestion.
    page = client.request("GET", "/?show=all")[2].decode()
    card = page[page.index(f'id="c-{edited}"') :]
    card = card[: card.index("</article>")]
    assert "Two dogs play on the road" in card and "Models now say" in card

    approved_only = library.rows("--approved")
    assert list(approved_only) == [FLICKR[0]]
    library.configure(beam_size=5)


def test_a_moved_copied_or_edited_photo_keeps_its_review(library: Library) -> None:
    root = library.root
    approved = library.sha(FLICKR[0])
    edited = library.sha(FLICKR[1])
    with library.index() as index:
        kept = index.review(edited)
    assert kept is not None and kept.caption == "Two dogs play on the road"
    moved = root / "moved"
    moved.mkdir(exist_ok=True)
    (root / FLICKR[0]).rename(moved / FLICKR[0])  # its sidecar follows it
    shutil.copyfile(moved / FLICKR[0], root / "copy.jpg")
    with Image.open(root / FLICKR[1]) as im:  # edited in place: same path, new content
        im.rotate(90, expand=True).save(root / FLICKR[1], quality=92)
    library.cli("scan", "-q", str(root))
    rows = library.rows()
    assert rows[FLICKR[0]]["review"] == rows["copy.jpg"]["review"] == "approved"
    assert rows["copy.jpg"]["sha256"] == approved
    assert rows[FLICKR[1]]["sha256"] != edited
    assert rows[FLICKR[1]]["caption"] == "Two dogs play on the road"
    copy_tags = subjects(root / "copy.jpg.xmp")
    assert copy_tags == [t.lstrip("#") for t in rows["copy.jpg"]["hashtags"].split()]
    assert read_sidecar(root / f"{FLICKR[1]}.xmp")["Description"] == "Two dogs play on the road"


def test_approve_all_shown_takes_only_undecided_cards_above_the_confidence(
    client: Client, library: Library
) -> None:
    rows = library.rows()
    ids = sorted({row["sha256"] for row in rows.values() if row["sha256"]})
    with library.index() as index:
        reviews = index.reviews(ids)
        sure = {h: index.analysis(h).caption_confidence or 0 for h in ids}  # type: ignore[union-attr]
    confident = {h for h in ids if sure[h] >= 0.9 and not (h in reviews and reviews[h].verdict)}
    status, _, content = client.request(
        "POST", "/api/approve-all", body={"ids": ids, "min_confidence": 0.9}
    )
    assert status == 200
    assert json.loads(content)["approved"] == len(confident) > 0
    after = library.rows()
    assert {r["sha256"] for r in after.values() if r["review"] == "approved"} >= confident
    assert after[FLICKR[3]]["review"] == "rejected"  # a verdict is never overturned


def test_written_sidecars_follow_sidecars_write_approved() -> None:
    analysis = Analysis(
        "a" * 64,
        caption="A dog on a beach.",
        caption_confidence=0.9,
        caption_source="sat",
        hashtags=["dog", "beach"],
        labels=["beagle"],
    )
    record = PhotoRecord(Path("p.jpg"), "a" * 64, "ok", analysis=analysis)
    assert record.as_written(0.3, "auto").keywords == ["dog", "beach"]
    nothing = record.as_written(0.3, "approved")
    assert nothing.keywords == [] and nothing.analysis.caption is None  # type: ignore[union-attr]
    mine = PhotoRecord(
        Path("p.jpg"), "a" * 64, "ok", analysis=analysis, review=Review("a" * 64, added=["mine"])
    )
    assert mine.as_written(0.3, "approved").keywords == ["mine"]
    assert mine.as_written(0.3, "auto").keywords == ["dog", "beach", "mine"]
    weak = PhotoRecord(
        Path("p.jpg"),
        "a" * 64,
        "ok",
        analysis=Analysis("a" * 64, caption="A cat.", caption_confidence=0.1, caption_source="sat"),
        review=Review("a" * 64, caption="My cat Tom."),
    )
    assert weak.as_written(0.3).analysis.caption == "My cat Tom."  # type: ignore[union-attr]


def test_thumbnails_are_upright_cached_apart_and_follow_the_content(
    library: Library, tmp_path: Path
) -> None:
    photo = library.root / "portrait_6.jpg"
    with Image.open(photo) as im:
        stored = im.size  # landscape pixels, EXIF orientation 6 (rotate for display)
        assert im.getexif().get(0x0112) == 6 and stored[0] > stored[1]
    cache = Thumbnails(tmp_path / "thumbs")
    sha256 = library.sha("portrait_6.jpg")
    data = cache.get(sha256, photo)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.size[1] > thumb.size[0]  # upright: a portrait
        assert max(thumb.size) <= 480
    [made] = list((tmp_path / "thumbs").rglob("*.jpg"))
    assert sha256 in made.name
    assert not list(library.root.rglob(f"*{sha256}*"))  # nothing beside the photos
    assert cache.get(sha256, Path("/nonexistent")) == data  # cached: the photo is not read
    other = cache.get("b" * 64, photo)
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 2 and other == data


def test_the_thumbnail_cache_stays_under_its_bound(library: Library, tmp_path: Path) -> None:
    photo = library.root / FLICKR[2]
    cache = Thumbnails(tmp_path / "thumbs", max_bytes=1)
    size = len(cache.get("c" * 64, photo))
    cache = Thumbnails(tmp_path / "thumbs", max_bytes=int(size * 3.5))
    for n in range(8):
        cache.get(f"{n}" * 64, photo)
    total = sum(f.stat().st_size for f in (tmp_path / "thumbs").rglob("*.jpg"))
    assert total <= size * 3.5
    assert (cache.path(f"{7}" * 64 + "-480")).exists()  # the newest stays


def test_contact_sheet_is_one_self_contained_file(library: Library, tmp_path: Path) -> None:
    out = tmp_path / "sheet.html"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--index", str(library.index_path), "report", "--html", str(out), str(library.root)],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources), sources
    assert "Content-Security-Policy" in html and "<script" not in html
    rows = library.rows()
    assert html.count('<article class="card') == len({r["sha256"] for r in rows.values()})
    assert "Two dogs play on the road" in html and "Rejected" in html
    rejected = runner.invoke(
        cli,
        ["--index", str(library.index_path), "report", "--html", str(out), "--show", "rejected"],
    )
    assert rejected.exit_code == 0 and out.read_text().count('<article class="card') == 1


def test_review_command_prints_its_address_and_serves_it(library: Library) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "photobatch",
            "--index",
            str(library.index_path),
            "review",
            "--no-browser",
            str(library.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"photobatch review: (http://127\.0\.0\.1:(\d+)/\?token=\S+)\n", line)
        assert match, line
        connection = http.client.HTTPConnection("127.0.0.1", int(match[2]), timeout=30)
        connection.request("GET", match[1].split(match[2], 1)[1])
        response = connection.getresponse()
        assert response.status == 303 and "HttpOnly" in response.headers["Set-Cookie"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_attention_map_is_drawn_on_demand_and_cached(client: Client, library: Library) -> None:
    sha256 = library.sha(FLICKR[2])
    status, headers, png = client.request("GET", f"/attention/{sha256}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(png)) as figure:
        assert figure.width >= 224 * 3  # the photo, then a panel per word
    assert client.request("GET", f"/attention/{sha256}")[2] == png
