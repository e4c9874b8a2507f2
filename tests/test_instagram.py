"""Instagram export import: every layout, every quirk, built here from real Flickr8k photos.

The exports are written into tmp folders (and zips) the way Instagram writes them: later layouts
escape each UTF-8 byte of every string as ``\\u00XX``. The analyzer is loaded once for the module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from photobatch.core.records import Analysis, Post, post_identity
from photobatch.core.text import caption_terms, extract_hashtags
from photobatch.instagram.export import (
    JSON_LIMIT,
    InstagramExportError,
    InstagramMedia,
    InstagramPost,
    parse_media_json,
    parse_posts_json,
    repair_mojibake,
)
from photobatch.instagram.importer import PHOTO_LIMIT, ImportSummary, import_instagram
from photobatch.instagram.profile import user_profile
from photobatch.library.index import Index
from photobatch.models.prior import harrison_idf

# One account, five posts: (unix time, caption, media). "pN" is the N-th Flickr photo, "vN" a video.
ACCOUNT: list[tuple[int, str, list[str]]] = [
    (1614600000, "Café au lait ☕️ with @marie_c #CoffeeTime#Paris #café", ["p0"]),
    (
        1617278400,
        "Weekend 😍🌊 #beach #Été #東京 #भारत https://example.com/#notatag",
        ["p1", "p2"],
    ),
    (1619870400, "Clip #DogsOfInstagram", ["v0"]),
    (1622548800, "#dog#puppy run! @friend #dog", ["p3", "v1"]),
    (1625140800, "", ["p4"]),
]
EXPECTED = [
    (
        "2021-03-01T12:00:00+00:00",
        "Café au lait ☕️ with @marie_c #CoffeeTime#Paris #café",
        ["coffeetime", "paris", "café"],
        ["photo"],
    ),
    (
        "2021-04-01T12:00:00+00:00",
        "Weekend 😍🌊 #beach #Été #東京 #भारत https://example.com/#notatag",
        ["beach", "été", "東京", "भारत"],
        ["photo", "photo"],
    ),
    ("2021-05-01T12:00:00+00:00", "Clip #DogsOfInstagram", ["dogsofinstagram"], ["video"]),
    (
        "2021-06-01T12:00:00+00:00",
        "#dog#puppy run! @friend #dog",
        ["dog", "puppy"],
        ["photo", "video"],
    ),
    ("2021-07-01T12:00:00+00:00", "", [], ["photo"]),
]
LATER_LAYOUTS = {
    "2021": "content",
    "2023": "your_instagram_activity/content",
    "2025": "your_instagram_activity/media",
}
COPIES = Path("index.db.personal") / "instagram"  # where an index.db keeps its imported photos
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4


# -- building exports -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(research_data: Path) -> list[Path]:
    return sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:5]


class OncePerPhotoAnalyzer:
    """The scan's real model set, run once per distinct photo for the whole module.

    Every test imports the same few photos into a fresh index; analysing them again each time
    would only repeat identical work on a shared CPU.
    """

    def __init__(self) -> None:
        from photobatch.core.config import Config
        from photobatch.models.stack import model_set

        self.inner = model_set(Config(), "cpu")
        self.models = self.inner.models
        self.cache: dict[bytes, Analysis] = {}
        self.runs = 0  # photos the models actually ran on

    def describe(self, hashes: list[str], images: list[Any]) -> list[Analysis]:
        keys = [hashlib.sha256(image.numpy().tobytes()).digest() for image in images]
        todo = [i for i, key in enumerate(keys) if key not in self.cache]
        if todo:
            found = self.inner.describe([hashes[i] for i in todo], [images[i] for i in todo])
            self.cache.update({keys[i]: a for i, a in zip(todo, found, strict=True)})
            self.runs += len(todo)
        return [
            dataclasses.replace(self.cache[key], sha256=sha)
            for key, sha in zip(keys, hashes, strict=True)
        ]


@pytest.fixture(scope="module")
def analyzer() -> OncePerPhotoAnalyzer:
    return OncePerPhotoAnalyzer()  # the models load on first need


def instagram_json(data: Any) -> str:
    """JSON as Instagram writes it: each UTF-8 byte of a string escaped as ``\\u00XX``."""

    def escape(value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8").decode("latin-1")
        if isinstance(value, list):
            return [escape(v) for v in value]
        if isinstance(value, dict):
            return {k: escape(v) for k, v in value.items()}
        return value

    return json.dumps(escape(data), ensure_ascii=True, indent=2)


def month(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y%m")


def media_uri(ref: str, stamp: int, photos: list[Path], legacy: bool = False) -> str:
    if ref.startswith("v"):
        return f"{'videos' if legacy else 'media/posts'}/{month(stamp)}/video_{ref[1:]}.mp4"
    return f"{'photos' if legacy else 'media/posts'}/{month(stamp)}/{photos[int(ref[1:])].name}"


def write_media(root: Path, posts: list[tuple[int, str, list[str]]], photos: list[Path]) -> None:
    legacy = (root / "media.json").exists()
    for stamp, _, refs in posts:
        for ref in refs:
            target = root / media_uri(ref, stamp, photos, legacy)
            target.parent.mkdir(parents=True, exist_ok=True)
            if ref.startswith("v"):
                target.write_bytes(VIDEO_BYTES)
            else:
                shutil.copyfile(photos[int(ref[1:])], target)


def write_posts_json(
    root: Path,
    layout: str,
    posts: list[tuple[int, str, list[str]]],
    photos: list[Path],
    number: int = 1,
) -> Path:
    """A 2021-2025 ``posts_N.json``: single-media posts keep caption and time on media[0]."""
    entries: list[dict[str, Any]] = []
    for stamp, caption, refs in posts:
        media = [
            {
                "uri": media_uri(ref, stamp, photos),
                "creation_timestamp": stamp,
                "media_metadata": {"photo_metadata": {"exif_data": [{"latitude": 47.6}]}},
                "title": caption if len(refs) == 1 else "",
                "cross_post_source": {"source_app": "FB"},
            }
            for ref in refs
        ]
        entry: dict[str, Any] = {"media": media}
        if len(refs) > 1:
            entry.update(title=caption, creation_timestamp=stamp)
        entries.append(entry)
    path = root / LATER_LAYOUTS[layout] / f"posts_{number}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(instagram_json(entries), encoding="ascii")
    return path


def write_media_json(
    root: Path, posts: list[tuple[int, str, list[str]]], photos: list[Path]
) -> Path:
    """A 2018 ``media.json``: plain UTF-8, one entry per photo or video, carousels flattened."""
    data: dict[str, list[dict[str, str]]] = {"photos": [], "videos": []}
    for stamp, caption, refs in posts:
        taken_at = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for ref in refs:
            kind = "videos" if ref.startswith("v") else "photos"
            path = media_uri(ref, stamp, photos, legacy=True)
            data[kind].append({"caption": caption, "taken_at": taken_at, "path": path})
    path = root / "media.json"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def write_export(
    root: Path, layout: str, photos: list[Path], posts: Any = None, media: bool = True
) -> Path:
    """An export of ``posts`` (default ``ACCOUNT``); ``media=False`` leaves the media files out,
    as real exports often come."""
    posts = ACCOUNT if posts is None else posts
    if layout == "2018":
        write_media_json(root, posts, photos)
    else:
        write_posts_json(root, layout, posts, photos)
    if media:
        write_media(root, posts, photos)
    return root


def zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return target


def summary_of(index: Index) -> list[tuple[str | None, str, list[str], list[str]]]:
    return [(p.taken_at, p.caption, p.hashtags, [m.kind for m in p.media]) for p in index.posts()]


def run_import(
    tmp_path: Path, sources: list[Path], analyzer: Any, name: str = "index.db"
) -> tuple[Index, ImportSummary]:
    index = Index(tmp_path / "data" / name)
    return index, import_instagram(index, sources, analyzer)


# -- pure parsing ---------------------------------------------------------------------------------


def test_mojibake_is_repaired_per_string_and_only_when_it_is_mojibake() -> None:
    escaped = json.loads(instagram_json(["Café 😍 #東京", "plain"]))
    assert escaped[0] != "Café 😍 #東京"
    assert [repair_mojibake(s) for s in escaped] == ["Café 😍 #東京", "plain"]
    assert repair_mojibake("café") == "café"  # real latin-1 text, not UTF-8 bytes: kept
    assert repair_mojibake("東京 😍") == "東京 😍"  # already decoded: kept


def test_hashtags_split_runs_keep_unicode_and_order_and_skip_urls() -> None:
    caption = (
        "#Sunset#beach🌅 #Été #東京 #भारत \uff03日本 #2024 #1st @me #Beach "
        "http://example.com/page#anchor www.x.org/#y #end."
    )
    assert extract_hashtags(caption) == [
        "sunset",
        "beach",
        "été",
        "東京",
        "भारत",
        "日本",
        "1st",
        "end",
    ]
    assert extract_hashtags("no tags here, C# and # alone") == []


def test_single_photo_caption_is_on_media_zero_and_multi_photo_on_the_post() -> None:
    data = json.loads(
        instagram_json(
            [
                {"media": [{"uri": "media/posts/1/a.jpg", "creation_timestamp": 0, "title": "é"}]},
                {
                    "media": [
                        {"uri": "media/posts/1/b.jpg", "creation_timestamp": 5, "title": ""},
                        {"uri": "media/posts/1/c.mov", "creation_timestamp": 6, "title": ""},
                    ],
                    "title": "two 😍",
                    "creation_timestamp": 60,
                },
            ]
        )
    )
    assert parse_posts_json(data, "posts_1.json") == [
        InstagramPost(
            "1970-01-01T00:00:00+00:00", "é", (InstagramMedia("media/posts/1/a.jpg", "photo"),)
        ),
        InstagramPost(
            "1970-01-01T00:01:00+00:00",
            "two 😍",
            (
                InstagramMedia("media/posts/1/b.jpg", "photo"),
                InstagramMedia("media/posts/1/c.mov", "video"),
            ),
        ),
    ]


def test_2018_carousel_entries_become_one_post() -> None:
    entry = {"caption": "två", "taken_at": "2018-03-01T12:00:00"}
    data = {
        "photos": [{**entry, "path": "photos/a.jpg"}, {**entry, "path": "photos/b.jpg"}],
        "videos": [{"caption": "v", "taken_at": "2018-03-02T12:00:00", "path": "videos/c.mp4"}],
    }
    posts = parse_media_json(data, "media.json")
    assert [(p.taken_at, p.caption, [m.kind for m in p.media]) for p in posts] == [
        ("2018-03-01T12:00:00+00:00", "två", ["photo", "photo"]),
        ("2018-03-02T12:00:00+00:00", "v", ["video"]),
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"posts": []}, "expected a list of posts"),
        ([{"title": "no media"}], "post 1: expected a 'media' list"),
        ([{"media": [{"uri": "a.jpg", "creation_timestamp": "x"}]}], "is not a number"),
    ],
)
def test_malformed_posts_json_names_the_file_and_post(data: Any, problem: str) -> None:
    with pytest.raises(InstagramExportError, match=problem) as err:
        parse_posts_json(data, "export.zip:content/posts_1.json")
    assert str(err.value).startswith("export.zip:content/posts_1.json: ")


# -- importing every layout -----------------------------------------------------------------------


@pytest.mark.parametrize("packed", ["folder", "zip"])
@pytest.mark.parametrize("layout", ["2018", "2021", "2023", "2025"])
def test_every_layout_imports_every_post_exactly(
    tmp_path: Path, photos: list[Path], analyzer: Any, layout: str, packed: str
) -> None:
    export = write_export(tmp_path / "export", layout, photos)
    if layout != "2018":
        raw = next(export.rglob("posts_1.json")).read_text(encoding="ascii")
        assert "\\u00f0\\u009f\\u0098\\u008d" in raw  # 😍, escaped byte by byte as Instagram does
    source = zip_folder(export, tmp_path / "export.zip") if packed == "zip" else export
    index, summary = run_import(tmp_path, [source], analyzer)
    assert summary_of(index) == EXPECTED
    assert (summary.posts, summary.new, summary.photos, summary.videos) == (5, 5, 5, 2)
    assert summary.problems == []
    assert "\n" not in summary.line() and "5 posts" in summary.line()


def test_multi_part_export_merges_posts_and_finds_media_in_any_part(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    first, second = tmp_path / "part1", tmp_path / "part2"
    write_posts_json(first, "2025", ACCOUNT[:3], photos, number=1)
    write_posts_json(second, "2025", ACCOUNT[3:], photos, number=2)
    write_media(first, [ACCOUNT[0], ACCOUNT[3]], photos)
    write_media(second, [ACCOUNT[1], ACCOUNT[2], ACCOUNT[4]], photos)
    parts = [
        zip_folder(first, tmp_path / "instagram-me-2025-01-01-part1.zip"),
        zip_folder(second, tmp_path / "instagram-me-2025-01-01-part2.zip", prefix="me_2025/"),
    ]
    index, summary = run_import(tmp_path, parts, analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems == []
    assert all(m.path for p in index.posts() for m in p.media if m.kind == "photo")


def test_reimport_is_idempotent_across_formats_too(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = zip_folder(write_export(tmp_path / "x", "2023", photos), tmp_path / "old.zip")
    index, first = run_import(tmp_path, [export], analyzer)
    before = index.posts()
    stamps = list(index.db.execute("SELECT id, imported_at FROM posts ORDER BY id"))
    counts = (index.db["posts"].count, index.db["post_media"].count)

    _, again = run_import(tmp_path, [export], analyzer)
    assert (again.posts, again.new, again.encoded) == (5, 0, 0)  # embeddings reused
    newer = write_export(tmp_path / "y", "2025", photos)
    legacy = write_export(tmp_path / "z", "2018", photos)
    _, merged = run_import(tmp_path, [newer, legacy], analyzer)
    assert (merged.posts, merged.new) == (5, 0)

    assert first.encoded == 5
    assert (index.db["posts"].count, index.db["post_media"].count) == counts
    assert [p.id for p in index.posts()] == [p.id for p in before]
    assert list(index.db.execute("SELECT id, imported_at FROM posts ORDER BY id")) == stamps
    assert summary_of(index) == EXPECTED


def test_importing_again_with_or_without_the_media_adds_no_post(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    bare = write_export(tmp_path / "bare", "2025", photos, media=False)
    full = write_export(tmp_path / "full", "2025", photos)
    index, first = run_import(tmp_path, [bare], analyzer)
    assert (first.posts, first.new, first.photos, first.without_photo) == (5, 5, 5, 5)
    assert len(first.missing) == 7 and first.problems == []  # five photos, two videos
    assert not any(m.embedding for p in index.posts() for m in p.media)
    ids = [p.id for p in index.posts()]

    _, with_media = run_import(tmp_path, [full], analyzer)
    assert (with_media.posts, with_media.new, with_media.total) == (5, 0, 5)
    assert with_media.missing == [] and with_media.without_photo == 1  # the video-only post
    encoded = [m for p in index.posts() for m in p.media if m.kind == "photo"]
    assert len(encoded) == 5 and all(m.embedding and m.candidates for m in encoded)

    _, bare_again = run_import(tmp_path, [bare], analyzer)
    _, full_again = run_import(tmp_path, [full], analyzer)
    assert (bare_again.new, full_again.new, full_again.encoded) == (0, 0, 0)
    assert [p.id for p in index.posts()] == ids and summary_of(index) == EXPECTED
    kept = [m for p in index.posts() for m in p.media if m.kind == "photo"]
    assert [(m.sha256, m.embedding) for m in kept] == [(m.sha256, m.embedding) for m in encoded]
    assert index.db["posts"].count == 5


def test_a_later_export_that_overlaps_updates_posts_in_place(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    old = write_export(tmp_path / "old", "2023", photos, ACCOUNT[:4])
    edited = (ACCOUNT[3][0], "#dog#puppy run! @friend #dog #zoomies", ACCOUNT[3][2])
    new = write_export(tmp_path / "new", "2025", photos, [*ACCOUNT[2:3], edited, ACCOUNT[4]], False)
    index, _ = run_import(tmp_path, [old], analyzer)
    _, later = run_import(tmp_path, [new], analyzer)
    assert (later.posts, later.new, later.total) == (3, 1, 5)
    posts = index.posts()
    assert [p.hashtags for p in posts][3] == ["dog", "puppy", "zoomies"]
    assert posts[3].media[0].embedding is not None  # the photo of the first import stays


def test_the_upgrade_merges_the_posts_an_older_import_added_twice(tmp_path: Path) -> None:
    """Older ids hashed the media when the export had them and time and caption when not: an
    index holding both copies of a post keeps one, with its photo and its first import time."""
    import sqlite_utils

    from photobatch.library.schema import MIGRATIONS, _key_posts_by_their_own_fields

    path = tmp_path / "index.db"
    db = sqlite_utils.Database(path)
    before = MIGRATIONS.index(_key_posts_by_their_own_fields)
    for migrate in MIGRATIONS[:before]:
        migrate(db)
    db.execute(f"PRAGMA user_version = {before}")
    at, caption = "2021-03-01T12:00:00+00:00", "Café #paris"
    vector = np.ones(1280, "<f2").tobytes()
    db["posts"].insert_all(
        [
            {
                "id": "by-time",
                "taken_at": at,
                "caption": caption,
                "hashtags": '["paris"]',
                "imported_at": "2024-01-01T00:00:00+00:00",
            },
            {
                "id": "by-media",
                "taken_at": at,
                "caption": caption,
                "hashtags": '["paris"]',
                "imported_at": "2024-02-01T00:00:00+00:00",
            },
            {
                "id": "other",
                "taken_at": "2021-04-01T12:00:00+00:00",
                "caption": "",
                "hashtags": "[]",
                "imported_at": "2024-01-01T00:00:00+00:00",
            },
        ]
    )
    db["post_media"].insert_all(
        [
            {"post_id": "by-time", "position": 0, "kind": "photo", "uri": "media/a.jpg"},
            {
                "post_id": "by-media",
                "position": 0,
                "kind": "photo",
                "uri": "media/a.jpg",
                "path": "/x/aa.jpg",
                "sha256": "aa",
                "embedding": vector,
            },
        ]
    )
    db.close()
    with Index(path) as index:
        posts = index.posts()
        stamps = [r[0] for r in index.db.execute("SELECT imported_at FROM posts ORDER BY taken_at")]
    assert [(p.taken_at, p.caption) for p in posts] == [
        (at, caption),
        ("2021-04-01T12:00:00+00:00", ""),
    ]
    assert [(m.uri, m.sha256, m.embedding) for m in posts[0].media] == [
        ("media/a.jpg", "aa", vector)
    ]
    assert stamps[0] == "2024-01-01T00:00:00+00:00"
    assert posts[0].id == post_identity(at, caption, ["media/a.jpg"])


def test_photos_are_copied_by_content_and_carry_their_embedding(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "export", "2021", photos)
    index, _ = run_import(tmp_path, [export], analyzer)
    shutil.rmtree(export)

    from photobatch.library.imaging import load_image

    media = [m for p in index.posts() for m in p.media]
    for m in media:
        if m.kind == "video":
            assert (m.path, m.embedding) == (None, None)
            assert m.sha256 == hashlib.sha256(VIDEO_BYTES).hexdigest()
            continue
        assert m.path is not None and m.path.parent == tmp_path / "data" / COPIES
        assert m.path.name == f"{m.sha256}.jpg"
        assert hashlib.sha256(m.path.read_bytes()).hexdigest() == m.sha256
        assert load_image(m.path).size == (224, 224)
        assert m.embedding is not None and len(m.embedding) == 1280 * 2
        vector = np.frombuffer(m.embedding, dtype="<f2")
        assert np.isfinite(vector).all() and np.abs(vector).sum() > 0
    photo_hashes = [m.sha256 for m in media if m.kind == "photo"]
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos]
    assert sorted(photo_hashes) == sorted(expected)


def test_export_table_posts(tmp_path: Path, photos: list[Path], analyzer: Any) -> None:
    index, _ = run_import(tmp_path, [write_export(tmp_path / "e", "2025", photos)], analyzer)
    rows = list(index.export_rows("posts"))
    assert [list(r) for r in rows] == [["id", "taken_at", "caption", "hashtags", "media"]] * 5
    assert [r["hashtags"] for r in rows] == [
        "#coffeetime #paris #café",
        "#beach #été #東京 #भारत",
        "#dogsofinstagram",
        "#dog #puppy",
        "",
    ]
    carousel = [Path(p) for p in rows[1]["media"].split(";")]
    assert [p.parent.name for p in carousel] == ["instagram", "instagram"]
    assert rows[2]["media"] == ""  # a video-only post keeps no copied media


def test_undecodable_photo_keeps_its_post_and_is_reported(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    broken = export / media_uri("p4", ACCOUNT[4][0], photos)
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    index, summary = run_import(tmp_path, [export], analyzer)
    assert summary_of(index) == EXPECTED
    assert (
        len(summary.problems) == 1 and media_uri("p4", ACCOUNT[4][0], photos) in summary.problems[0]
    )
    last = index.posts()[-1].media[0]
    assert last.path is not None and last.embedding is None


# -- bad input ------------------------------------------------------------------------------------


def assert_nothing_imported(tmp_path: Path) -> None:
    with Index(tmp_path / "data" / "index.db") as index:
        assert index.posts() == []
    copies = tmp_path / "data" / COPIES
    assert not copies.exists() or not any(copies.iterdir())


def test_a_corrupt_zip_names_the_file_and_imports_nothing(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    good = zip_folder(write_export(tmp_path / "e", "2023", photos), tmp_path / "part1.zip")
    bad = tmp_path / "part2.zip"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InstagramExportError, match=re.escape("part2.zip: corrupt zip file")):
        run_import(tmp_path, [good, bad], analyzer)
    assert_nothing_imported(tmp_path)


def test_a_damaged_member_names_it_and_removes_the_copies_made(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    archive = zip_folder(write_export(tmp_path / "e", "2023", photos), tmp_path / "export.zip")
    data = bytearray(archive.read_bytes())
    last_photo = photos[4].read_bytes()  # stored uncompressed: its bytes are in the zip as they are
    at = data.index(last_photo) + len(last_photo) // 2
    data[at : at + 8] = b"\x00" * 8
    archive.write_bytes(bytes(data))
    member = media_uri("p4", ACCOUNT[4][0], photos)
    with pytest.raises(InstagramExportError, match=re.escape(f"export.zip:{member}: cannot read")):
        run_import(tmp_path, [archive], analyzer)
    assert_nothing_imported(tmp_path)


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_broken_json_names_the_file_and_imports_nothing(
    tmp_path: Path, photos: list[Path], analyzer: Any, packed: str
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    posts_2 = write_posts_json(export, "2025", ACCOUNT[:1], photos, number=2)
    posts_2.write_text(posts_2.read_text(encoding="ascii")[:-20], encoding="ascii")
    source = zip_folder(export, tmp_path / "e.zip") if packed == "zip" else export
    inside = "your_instagram_activity/media/posts_2.json"
    name = f"{tmp_path / 'e.zip'}:{inside}" if packed == "zip" else str(posts_2)
    with pytest.raises(InstagramExportError) as err:
        run_import(tmp_path, [source], analyzer)
    assert str(err.value).startswith(f"{name}: not valid JSON")
    assert_nothing_imported(tmp_path)


def test_something_that_is_not_an_export_says_what_was_looked_for(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    folder = tmp_path / "holiday"
    folder.mkdir()
    shutil.copyfile(photos[0], folder / "a.jpg")
    (folder / "notes.json").write_text("{}", encoding="utf-8")
    for source in (folder, folder / "a.jpg"):
        with pytest.raises(InstagramExportError) as err:
            run_import(tmp_path, [source], analyzer)
        message = str(err.value)
        assert message.startswith(f"{source}: not an Instagram export")
        assert "posts_*.json" in message and "media.json" in message
    with pytest.raises(InstagramExportError, match="no such file or folder"):
        run_import(tmp_path, [tmp_path / "missing.zip"], analyzer)
    html = tmp_path / "html" / "your_instagram_activity" / "media"
    html.mkdir(parents=True)
    (html / "posts_1.html").write_text("<html></html>", encoding="utf-8")
    with pytest.raises(InstagramExportError, match="HTML format"):
        run_import(tmp_path, [tmp_path / "html"], analyzer)
    assert_nothing_imported(tmp_path)


# -- the user's profile ---------------------------------------------------------------------------


def test_caption_terms_drop_stopwords_numbers_mentions_and_urls() -> None:
    terms = caption_terms("Bouldering with @anna_k at the gym 3 times! https://x.co/a #Climbing")
    assert terms == {"bouldering", "gym", "times", "#climbing"}


def climber(tmp_path: Path) -> Index:
    """A user who climbs: distinctive words and tags, plus the tags everyone uses."""
    captions = [
        "Bouldering session at the crag #bouldering #love #instagood",
        "New project at the crag, finally sent it #bouldering #climbing #love",
        "Sunday #bouldering with the crew #love #instagood #happy",
        "Rest day, coffee and chalk #love",
    ]
    index = Index(tmp_path / "index.db")
    index.write_posts(
        [
            Post(id=str(i), taken_at=None, caption=c, hashtags=extract_hashtags(c))
            for i, c in enumerate(captions)
        ]
    )
    return index


def test_profile_ranks_the_users_distinctive_terms_above_common_ones(tmp_path: Path) -> None:
    profile = user_profile(climber(tmp_path))  # the shipped HARRISON prior as background
    terms = [t for t, _ in profile]
    scores = dict(profile)
    assert terms[0] == "#bouldering"
    assert scores["#bouldering"] > scores["#love"] and scores["crag"] > scores["#love"]
    assert scores["#climbing"] > scores["#instagood"]
    assert [s for _, s in profile] == sorted((s for _, s in profile), reverse=True)
    assert not {"the", "at", "with", "and"} & set(terms)
    assert len(user_profile(climber(tmp_path / "b"), top_d=3)) == 3


def test_harrison_idf_caps_unknown_words_at_the_rarest_known_tag() -> None:
    from photobatch.models.prior import default_prior

    prior = default_prior()
    idf = harrison_idf(prior)
    rarest = max(prior.vocab, key=prior.idf)
    assert idf("zzznotatag") == idf(rarest) == prior.idf(rarest)
    assert idf("love") < idf("bouldering")


def test_profile_with_any_background_and_no_posts(tmp_path: Path) -> None:
    flat = user_profile(climber(tmp_path), lambda word: 1.0, top_d=2)
    assert flat == [("#love", 1.0), ("#bouldering", 0.75)]
    with Index(tmp_path / "empty.db") as empty:
        assert user_profile(empty, lambda word: 1.0) == []


# -- hostile exports: the bad part is left out and reported, the rest imported ---------------------


def test_a_zip_bombed_posts_json_is_skipped_and_the_rest_imported(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    bomb = export / LATER_LAYOUTS["2025"] / "posts_2.json"
    bomb.write_bytes(b"[" + b" " * JSON_LIMIT + b"]")  # 16 MB that deflate to 16 KB
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(export.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(export).as_posix())
    assert archive.stat().st_size < 1 << 20
    index, summary = run_import(tmp_path, [archive], analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems == [
        f"{archive}:{LATER_LAYOUTS['2025']}/posts_2.json: unpacks to more than 100 times its "
        "compressed size, which no photo or export file does (a zip bomb): left out"
    ]


def test_a_zip_bombed_photo_is_left_out_and_its_partial_copy_deleted(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2023", photos)
    member = media_uri("p4", ACCOUNT[4][0], photos)
    (export / member).write_bytes(b"\xff\xd8\xff" + bytes(PHOTO_LIMIT))  # 100 MB of zeros
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(export.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(export).as_posix())
    index, summary = run_import(tmp_path, [archive], analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems == [
        f"{archive}:{member}: unpacks to more than 100 times its compressed size, which no "
        "photo or export file does (a zip bomb): left out"
    ]
    assert index.posts()[-1].media[0].path is None
    copies = list((tmp_path / "data" / COPIES).iterdir())
    assert len(copies) == 4 and all(c.stat().st_size < 1 << 20 for c in copies)


def test_a_json_nested_too_deep_is_skipped_and_the_rest_imported(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    deep = export / LATER_LAYOUTS["2025"] / "posts_2.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="ascii")
    index, summary = run_import(tmp_path, [export], analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems == [f"{deep}: JSON nested too deep to read: skipped"]


def test_a_caption_with_a_lone_surrogate_skips_only_that_post(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    broken = export / LATER_LAYOUTS["2025"] / "posts_2.json"
    broken.write_text(
        '[{"media": [{"uri": "media/posts/x.jpg", "creation_timestamp": 1625140800, '
        '"title": "half an emoji \\ud83d #oops"}]}]',
        encoding="ascii",
    )
    index, summary = run_import(tmp_path, [export], analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems == [
        f"{broken}: post of 2021-07-01T12:00:00+00:00: its text is not valid Unicode "
        "(a lone surrogate): skipped"
    ]


def test_a_symlink_in_an_unpacked_export_is_never_followed(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    export = write_export(tmp_path / "e", "2025", photos)
    secret = tmp_path / "secret.jpg"  # a readable photo: only the link keeps it out
    shutil.copyfile(photos[4], secret)
    link = export / media_uri("p4", ACCOUNT[4][0], photos)
    link.unlink()
    link.symlink_to(secret)
    index, summary = run_import(tmp_path, [export], analyzer)
    assert summary_of(index) == EXPECTED
    assert summary.problems[0] == f"{link}: a symbolic link: skipped (never followed)"
    copied = {c.read_bytes() for c in (tmp_path / "data" / COPIES).iterdir()}
    assert secret.read_bytes() not in copied and len(copied) == 4


def test_a_killed_imports_temp_file_is_swept_by_the_next(
    tmp_path: Path, photos: list[Path], analyzer: Any
) -> None:
    copies = tmp_path / "data" / COPIES
    copies.mkdir(parents=True)
    orphan, live = copies / ".import-k1ll3d.jpg", copies / ".import-busy.jpg"
    orphan.write_bytes(b"\xff\xd8 half a photo")
    live.write_bytes(b"\xff\xd8 being written by another import")
    hours_ago = time.time() - 2 * 3600
    os.utime(orphan, (hours_ago, hours_ago))
    index, _ = run_import(tmp_path, [write_export(tmp_path / "e", "2025", photos)], analyzer)
    assert summary_of(index) == EXPECTED
    assert not orphan.exists() and live.exists()
