"""The review page in a real browser: Debian's headless Chromium, driven by Selenium.

A 200-photo library is scanned, its page opened; three cards are approved with the keyboard, one
caption edited and one hashtag removed; then the library is analysed again by another model
version (another beam size) with ``scan --reanalyse``. The edits must survive in the index and in
the sidecars, read back with exiftool, and the page must not have asked any host but the local
server for anything (Chromium's own network log).

``PHOTOBATCH_SCREENSHOT=docs/review.png`` also saves the screenshot the README and docs/review.md
show.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from exiftool_helpers import keywords_and_description as read_sidecar

from photobatch.cli import cli
from photobatch.core.config import load_config
from photobatch.library.index import Index
from photobatch.review.server import ReviewServer

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PHOTOS = 200
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


@pytest.fixture(scope="module")
def browser_paths() -> tuple[Path, Path]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


class Library:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.index, self.config = root, tmp / "index.db", tmp / "config.yaml"

    def cli(self, beam_size: int, *args: str) -> str:
        self.config.write_text(f"captioner:\n  beam_size: {beam_size}\n", encoding="utf-8")
        base = ["--config", str(self.config), "--index", str(self.index)]
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture(scope="module")
def library(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Library:
    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "photos"
    root.mkdir()
    images = research_data / "flickr8k" / "images"
    for name in sorted(os.listdir(images))[:PHOTOS]:
        shutil.copyfile(images / name, root / name)
    library = Library(root, tmp)
    library.cli(5, "scan", "-q", str(root))
    return library


@pytest.fixture
def browser(browser_paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    chromium, chromedriver = browser_paths
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never looks for a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    profile = tempfile.mkdtemp(prefix="photobatch-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(chromedriver)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Schemes Chromium resolves without asking any host (its own start page uses them).
NO_HOST = {"data", "blob", "about", "chrome", "chrome-untrusted", "devtools"}


def requested_urls(driver: Any) -> list[str]:
    """Every URL anything in the browser asked for, from Chromium's network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_the_machine(urls: list[str], server: str) -> list[str]:
    """The requests that went to a host other than ``server`` (host:port)."""
    return [u for u in urls if urlsplit(u).scheme not in NO_HOST and urlsplit(u).netloc != server]


def test_review_in_a_browser_survives_a_new_model(library: Library, browser: Any) -> None:
    settings = load_config(library.config, index=library.index)
    server = ReviewServer(settings, [library.root])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait = WebDriverWait(browser, 60)
    try:
        browser.get(server.url)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.card")) == 48)
        assert f"of {PHOTOS}" in browser.find_element(By.CSS_SELECTOR, ".pager").text
        ids = [
            card.get_attribute("data-id")
            for card in browser.find_elements(By.CSS_SELECTOR, "article.card")
        ]
        body = browser.find_element(By.TAG_NAME, "body")

        for n in range(3):  # approve three cards with the keyboard: a approves and moves on
            body.send_keys("a")
            wait.until(lambda d, n=n: d.find_elements(By.CSS_SELECTOR, f"#c-{ids[n]}.approved"))

        body.send_keys("e")  # the fourth card is current now: edit its caption
        caption = browser.switch_to.active_element
        assert caption.get_attribute("class") == "caption-edit"
        caption.send_keys(Keys.CONTROL, "a")
        caption.send_keys("Our dog Rex at the lake")
        caption.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#c-{ids[3]}.edited"))

        fifth = f"#c-{ids[4]}"
        remove = browser.find_element(By.CSS_SELECTOR, f'{fifth} button[data-act="remove"]')
        removed = remove.get_attribute("data-tag")
        remove.click()
        wait.until(
            lambda d: (
                not d.find_elements(
                    By.CSS_SELECTOR, f'{fifth} button[data-act="remove"][data-tag="{removed}"]'
                )
            )
        )
        if os.environ.get("PHOTOBATCH_SCREENSHOT"):
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(os.environ["PHOTOBATCH_SCREENSHOT"])

        browser.find_element(By.TAG_NAME, "body").send_keys("n")  # the next page
        wait.until(lambda d: "page 2 of" in d.find_element(By.CSS_SELECTOR, ".pager").text)
        local = f"127.0.0.1:{server.port}"
        urls = requested_urls(browser)
        assert len([u for u in urls if u.startswith(f"http://{local}/thumb/")]) >= 8
        assert off_the_machine(urls, local) == []
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        server.shutdown()
        server.server_close()

    with Index(library.index) as index:
        before = index.reviews(ids[:5])
        paths = {sha: paths[0] for sha, paths in index.paths_with(ids[:5]).items()}
        models = index.analysis(ids[0]).models  # type: ignore[union-attr]
    assert [before[i].verdict for i in ids[:3]] == ["approved"] * 3
    assert before[ids[3]].caption == "Our dog Rex at the lake"
    assert removed in before[ids[4]].removed

    summary = library.cli(3, "scan", "--reanalyse", str(library.root))  # another beam size
    assert f"{PHOTOS} re-analysed" in summary or f"; {PHOTOS} analysed" in summary

    with Index(library.index) as index:
        after = index.reviews(ids[:5])
        assert index.analysis(ids[0]).models != models  # type: ignore[union-attr]
        records = {sha: index.record(path) for sha, path in paths.items()}
    assert after == before  # not one approval or edit lost
    for sha in ids[:3]:
        written = read_sidecar(Path(f"{paths[sha]}.xmp"))
        assert written["Subject"] == before[sha].approved_hashtags
        assert written.get("Description") == (before[sha].approved_caption or None)
    assert read_sidecar(Path(f"{paths[ids[3]]}.xmp"))["Description"] == "Our dog Rex at the lake"
    fifth_tags = read_sidecar(Path(f"{paths[ids[4]]}.xmp"))["Subject"]
    assert removed not in fifth_tags
    record = records[ids[4]]
    assert record is not None and record.analysis is not None
    assert fifth_tags == [t for t in record.analysis.hashtags if t != removed]
