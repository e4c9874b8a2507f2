"""``photobatch review``: a local web page to see, fix, approve and reject what the models said.

Python's own ``http.server`` (a thread per request), server-rendered HTML, and a small script of
our own: nothing to install beyond photobatch. A local server is still reachable by every web
page the user's browser opens, so each request passes a gate before anything else runs:

- the socket listens on 127.0.0.1 only;
- the ``Host`` header must name this server (``127.0.0.1:PORT`` or ``localhost:PORT``), so a
  page on another name that resolves to 127.0.0.1 (DNS rebinding) is refused;
- every request carries the random token of this run: in the first URL, which trades it for a
  cookie of this port (``HttpOnly``, ``SameSite=Strict``), or in the cookie;
- a write is a POST with a JSON body and the page's CSRF token in a header, from no other origin;
- photos are named by the content's sha256 only and looked up in the index: no path from the
  client ever reaches the file system;
- every answer carries a Content-Security-Policy that lets the page load nothing but this
  server's own files.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import queue
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from photobatch.core.config import Config
from photobatch.core.errors import UserError
from photobatch.core.lock import SidecarLock
from photobatch.core.records import Analysis, Review
from photobatch.core.text import user_hashtags
from photobatch.library import reviews
from photobatch.library.imaging import ImageError
from photobatch.library.index import Index
from photobatch.library.reviews import SHOWS, CardQuery
from photobatch.library.sidecars import SidecarSync
from photobatch.library.thumbnails import Thumbnails
from photobatch.review.cards import CardView, render_card
from photobatch.review.page import render_page, static_text

HOST = "127.0.0.1"
PAGE_SIZE = 48
MAX_BODY = 64 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
SHA256 = re.compile(r"[0-9a-f]{64}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
STATIC = {"review.css": "text/css; charset=utf-8", "review.js": "text/javascript; charset=utf-8"}

Change = Callable[[Review, Analysis], None]


class Refused(Exception):
    """A request the gate or a handler turns away: its status and a one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Library:
    """What the handlers share: the config, which photos this page covers, its tokens, the
    thumbnail cache and the sidecar writer (None: index only)."""

    config: Config
    roots: tuple[Path, ...]
    token: str
    csrf: str
    thumbnails: Thumbnails
    sidecars: SidecarSync | None
    writes: threading.Lock
    attention: threading.Lock

    def index(self) -> Index:
        """An index connection for one request (SQLite connections stay in their thread)."""
        return Index(self.config.index, create=False)


class Prefetch:
    """Makes the thumbnails of the page the user will want next, one at a time, in a thread of
    its own: page 1 while the browser starts, then the page after each page shown, so the next
    page key finds them made. A newer page replaces an older one not started yet."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self._pages: queue.Queue[CardQuery | None] = queue.Queue()
        threading.Thread(target=self._run, name="thumbnail-prefetch", daemon=True).start()

    def ahead(self, query: CardQuery) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._pages.get_nowait()
        self._pages.put(query)

    def stop(self) -> None:
        self._pages.put(None)

    def _run(self) -> None:
        while (query := self._pages.get()) is not None:
            try:
                with self.library.index() as index:
                    _, cards = index.cards(query)
                for card in cards:
                    if not self._pages.empty():
                        break  # the user moved on
                    with contextlib.suppress(ImageError):
                        self.library.thumbnails.get(card.sha256, card.record.path)
            except (UserError, OSError):
                continue  # only a head start: the page's own requests say what is wrong


class ReviewServer(ThreadingHTTPServer):
    """The review page's HTTP server on 127.0.0.1; ``port=0`` takes a free port."""

    daemon_threads = True

    def __init__(
        self,
        config: Config,
        roots: list[Path],
        *,
        sidecars: bool = True,
        port: int = 0,
        thumbnails: Thumbnails | None = None,
    ) -> None:
        with Index(config.index, create=False):  # fail now, in one line, without an index
            pass
        self.library = Library(
            config=config,
            roots=tuple(r.expanduser().absolute() for r in roots),
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            thumbnails=thumbnails or Thumbnails(max_bytes=config.review.thumbnail_cache_mb * 2**20),
            sidecars=SidecarSync(config.sidecars) if sidecars else None,
            writes=threading.Lock(),
            attention=threading.Lock(),
        )
        super().__init__((HOST, port), Handler)
        self.prefetch = Prefetch(self.library)
        self.prefetch.ahead(self.first_page())

    def first_page(self) -> CardQuery:
        """Page 1 of every photo this page covers: what the printed address opens."""
        return CardQuery(
            roots=self.library.roots,
            threshold=self.library.config.sidecars.min_caption_confidence,
            limit=PAGE_SIZE,
        )

    def server_close(self) -> None:
        self.prefetch.stop()
        super().server_close()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        """The page's address with this run's token: what the user opens."""
        return f"http://{HOST}:{self.port}/?token={self.library.token}"

    @property
    def cookie_name(self) -> str:
        return f"photobatch-review-{self.port}"


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    # -- the gate -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_HEAD(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _handle(self, route: Callable[[str, dict[str, list[str]]], None]) -> None:
        try:
            url = urlsplit(self.path)
            params = parse_qs(url.query, max_num_fields=20)
            self._check_host()
            if not self._has_token():
                if self.command == "GET" and url.path == "/" and self._token_in(params):
                    self._trade_token(params)
                    return
                raise Refused(HTTPStatus.FORBIDDEN, "this page needs the URL photobatch printed")
            route(url.path, params)
        except Refused as exc:
            self._refuse(exc.status, str(exc))
        except (ValueError, TypeError):  # a malformed query, header or JSON body
            self._refuse(HTTPStatus.BAD_REQUEST, "bad request")
        except UserError as exc:  # the index or a lock failed: say so, as the CLI would
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        """Answer with ``reason`` and close the connection: a body left unread must never be
        read as the next request."""
        self.close_connection = True
        headers = {"Connection": "close"}
        self._send(status, f"{reason}\n".encode(), "text/plain; charset=utf-8", headers)

    def _check_host(self) -> None:
        allowed = {f"{HOST}:{self.server.port}", f"localhost:{self.server.port}"}
        if self.headers.get("Host", "").lower() not in allowed:
            raise Refused(HTTPStatus.MISDIRECTED_REQUEST, "not this server's host name")

    def _token_in(self, params: dict[str, list[str]]) -> bool:
        given = params.get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.server.library.token.encode())

    def _has_token(self) -> bool:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return False
        morsel = cookie.get(self.server.cookie_name)
        given = morsel.value if morsel is not None else ""
        return hmac.compare_digest(given.encode(), self.server.library.token.encode())

    def _trade_token(self, params: dict[str, list[str]]) -> None:
        """The first visit: the token leaves the address bar for a cookie of this port."""
        rest = {k: v[0] for k, v in params.items() if k != "token"}
        target = "/" + ("?" + urlencode(rest) if rest else "")
        cookie = (
            f"{self.server.cookie_name}={self.server.library.token}; Path=/; HttpOnly; "
            "SameSite=Strict"
        )
        self._send(
            HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": target, "Set-Cookie": cookie}
        )

    def _check_write(self) -> bytes:
        """A write's body, once it proved it comes from the page: the CSRF token, JSON, and no
        other origin."""
        given = self.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(given.encode(), self.server.library.csrf.encode()):
            raise Refused(HTTPStatus.FORBIDDEN, "missing or wrong CSRF token")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '').lower()}":
            raise Refused(HTTPStatus.FORBIDDEN, "writes come from this page only")
        if self.headers.get_content_type() != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
        length = int(self.headers.get("Content-Length", "0"))
        if not 0 <= length <= MAX_BODY:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
        return self.rfile.read(length)

    # -- routes ---------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, list[str]]) -> None:
        library = self.server.library
        if path == "/":
            self._send_page(params)
        elif path == "/favicon.ico":  # browsers ask for it; the page has none
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path.startswith("/static/") and path[8:] in STATIC:
            name = path[8:]
            self._send(HTTPStatus.OK, static_text(name).encode(), STATIC[name])
        elif path.startswith(("/thumb/", "/large/")):
            size = "card" if path.startswith("/thumb/") else "large"
            sha256, photo = self._photo(path.split("/", 2)[2])
            try:
                data = library.thumbnails.get(sha256, photo, size)
            except ImageError as exc:
                raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY, exc.problem) from None
            self._send(HTTPStatus.OK, data, "image/jpeg", immutable=True)
        elif path.startswith("/attention/"):
            sha256, photo = self._photo(path.split("/", 2)[2])
            self._send(HTTPStatus.OK, self._attention(sha256, photo), "image/png", immutable=True)
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def _post(self, path: str, params: dict[str, list[str]]) -> None:
        body = json.loads(self._check_write() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("not an object")
        if path == "/api/approve-all":
            hashes = [h for h in body.get("ids", []) if isinstance(h, str) and SHA256.fullmatch(h)]
            minimum = float(body.get("min_confidence", 1.0))
            with self.server.library.index() as index:
                approved, problems = self._write(
                    index, hashes, lambda: index.approve_all(hashes, minimum)
                )
            self._send_json({"approved": len(approved), "problems": problems})
        elif path.startswith("/api/review/"):
            sha256 = path.split("/", 3)[3]
            if not SHA256.fullmatch(sha256):
                raise Refused(HTTPStatus.NOT_FOUND, "no such photo")
            change = _change(body)
            with self.server.library.index() as index:
                try:
                    _, problems = self._write(
                        index, [sha256], lambda: index.change_review(sha256, change)
                    )
                except KeyError:
                    raise Refused(HTTPStatus.NOT_FOUND, "no such photo") from None
                cards = index.cards_of([sha256])
            html = "".join(
                render_card(CardView.of(card), f"/thumb/{sha256}", interactive=True)
                for card in cards
            )
            self._send_json({"card": html, "problems": problems})
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def _write(
        self, index: Index, hashes: list[str], apply: Callable[[], Any]
    ) -> tuple[Any, list[str]]:
        """Apply a review change, then bring the sidecars of its photos up to date (problems
        as messages), under the lock a scan's sidecar writes take too."""
        library = self.server.library
        problems: list[str] = []
        with library.writes, SidecarLock(library.config.index):
            result = apply()
            if library.sidecars is not None:
                for paths in index.paths_with(hashes).values():
                    for path in paths:
                        record = index.record(path)
                        if record is not None and record.status == "ok":
                            problems += library.sidecars.write(record)
        return result, problems

    # -- pieces ---------------------------------------------------------------------------------

    def _send_page(self, params: dict[str, list[str]]) -> None:
        library = self.server.library

        def one(name: str) -> str | None:
            value = params.get(name, [""])[0].strip()
            return value or None

        show = one("show") or "all"
        page = int(one("page") or "1")
        dates = [d if d and DATE.fullmatch(d) else None for d in (one("from"), one("to"))]
        query = replace(
            self.server.first_page(),
            show=show if show in SHOWS else "all",
            folder=one("folder"),
            date_from=dates[0],
            date_to=dates[1],
            search=one("q"),
            offset=(max(page, 1) - 1) * PAGE_SIZE,
        )
        with library.index() as index:
            total, cards = index.cards(query)
            folders = index.folders(library.roots)
        html = render_page(cards, total, query, folders, csrf=library.csrf)
        self._send(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8")
        if query.offset + PAGE_SIZE < total:
            self.server.prefetch.ahead(replace(query, offset=query.offset + PAGE_SIZE))

    def _photo(self, sha256: str) -> tuple[str, Path]:
        """A photo of content ``sha256`` as the index knows it: the one way to a file."""
        if not SHA256.fullmatch(sha256):
            raise Refused(HTTPStatus.NOT_FOUND, "no such photo")
        with self.server.library.index() as index:
            paths = index.paths_with([sha256]).get(sha256)
        if not paths:
            raise Refused(HTTPStatus.NOT_FOUND, "no such photo")
        return sha256, paths[0]

    def _attention(self, sha256: str, photo: Path) -> bytes:
        """The figure of ``show --attention`` for this photo, made once per content and models."""
        from photobatch.models.attention import explain_photo

        library = self.server.library
        config = library.config
        name = f"attention-{sha256}"

        def make() -> bytes:
            with library.attention, tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "attention.png"
                explain_photo(photo, out, config.captioner, config.device, config.grounding.model)
                return out.read_bytes()

        try:
            return library.thumbnails.cached(name, ".png", make)
        except ImageError as exc:
            raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY, exc.problem) from None

    def _send_json(self, value: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(value).encode(), "application/json")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        immutable: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        cache = "private, max-age=31536000, immutable" if immutable else "no-store"
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the first request's line holds the token, and the terminal is the user's."""


def _change(body: dict[str, Any]) -> Change:
    """The review change a page's JSON asks for."""
    action = body.get("action")
    text = body.get("text")
    if action in ("approve", "reject", "clear", "use-suggestion"):
        return {
            "approve": reviews.approve,
            "reject": reviews.reject,
            "clear": reviews.clear,
            "use-suggestion": reviews.use_suggestion,
        }[action]
    if not isinstance(text, str) or len(text) > 10_000:
        raise ValueError("text expected")
    if action == "caption":
        return lambda review, analysis: reviews.set_caption(review, analysis, text)
    if action == "post":
        return lambda review, analysis: reviews.set_post_text(review, analysis, text)
    if action == "add":
        tags = user_hashtags(text)
        return lambda review, analysis: reviews.add_hashtags(review, analysis, tags)
    if action == "remove":
        tag = text.strip().lstrip("#")
        return lambda review, analysis: reviews.remove_hashtag(review, analysis, tag)
    raise ValueError(f"unknown action {action!r}")


def serve(server: ReviewServer) -> None:
    """Serve until interrupted (Ctrl-C)."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
