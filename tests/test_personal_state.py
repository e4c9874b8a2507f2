"""Personal state belongs to one index: the CLI from an Instagram export to a scanned photo.

Two indexes share one folder; only the one that imported and trained is personalized. Exports are
built from real Flickr8k photos the way ``test_instagram`` builds them; the old shared layout is
recreated file by file to check that it is moved, not lost.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_instagram import write_export

from photobatch.cli import cli
from photobatch.core.records import Post, PostMedia
from photobatch.library.index import Index

DOG_TAGS = ["goodboy", "dogmom"]


def photobatch(index: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(index), *args])


def flickr(research_data: Path, count: int, skip: int = 0) -> list[Path]:
    return sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[skip : skip + count]


def account(posts: int, caption: str) -> list[tuple[int, str, list[str]]]:
    """``posts`` single-photo posts a day apart, all with ``caption``."""
    return [(1614600000 + 86400 * i, caption, [f"p{i}"]) for i in range(posts)]


def scanned(index: Path, photo: Path) -> tuple[list[str], str | None]:
    """(hashtags, the head that ranked them) the index stored for ``photo``."""
    with Index(index) as db:
        record = db.record(photo)
    assert record is not None and record.analysis is not None
    return record.analysis.hashtags, record.analysis.personalized_by


@pytest.fixture(scope="module")
def two_indexes(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """``a.db`` imports 12 posts that all carry the same two tags and trains; ``b.db``, in the
    same folder, imports nothing. Both scan the same photo."""
    root = tmp_path_factory.mktemp("two")
    export = write_export(
        root / "export", "2025", flickr(research_data, 12), account(12, "#goodboy #dogmom")
    )
    photos = root / "photos"
    photos.mkdir()
    photo = photos / "dogs.jpg"
    shutil.copyfile(research_data / "flickr8k" / "images" / "1001773457_577c3a7d70.jpg", photo)
    a, b = root / "data" / "a.db", root / "data" / "b.db"
    imported = photobatch(a, "import-instagram", str(export), "--device", "cpu")
    trained = photobatch(a, "train", "personalizer")
    scans = [
        photobatch(i, "scan", "--no-sidecars", "--quiet", "--device", "cpu", str(photos))
        for i in (a, b)
    ]
    for result in (imported, trained, *scans):
        assert result.exit_code == 0, result.output
    return {"a": a, "b": b, "photo": photo, "trained": trained.output}


def test_the_head_and_media_live_in_the_index_own_folder(two_indexes: dict) -> None:
    a: Path = two_indexes["a"]
    own = a.parent / "a.db.personal"
    assert (own / "personalizer.pt").is_file()
    copies = sorted((own / "instagram").iterdir())
    assert len(copies) == 12
    assert not {"personalizer.pt", "instagram"} & {p.name for p in a.parent.iterdir()}
    with Index(a) as db:
        assert {m.path for p in db.posts() for m in p.media} == set(copies)


def test_the_same_tags_on_every_post_become_habits(two_indexes: dict) -> None:
    assert "12 posts" in two_indexes["trained"]
    tags, head = scanned(two_indexes["a"], two_indexes["photo"])
    assert head is not None
    assert set(DOG_TAGS) <= set(tags)


def test_a_second_index_in_the_folder_shares_nothing(two_indexes: dict) -> None:
    tags, head = scanned(two_indexes["b"], two_indexes["photo"])
    assert head is None
    assert not set(DOG_TAGS) & set(tags)
    status = photobatch(two_indexes["b"], "status")
    assert status.exit_code == 0, status.output
    assert "no Instagram posts imported" in status.output
    assert not (two_indexes["b"].parent / "b.db.personal").exists()


def test_three_posts_train_nothing_and_say_why(research_data: Path, tmp_path: Path) -> None:
    export = write_export(
        tmp_path / "export", "2025", flickr(research_data, 3), account(3, "#goodboy")
    )
    index = tmp_path / "index.db"
    assert photobatch(index, "import-instagram", str(export), "--device", "cpu").exit_code == 0
    trained = photobatch(index, "train", "personalizer")
    assert trained.exit_code == 0, trained.output
    assert "nothing trained" in trained.output and "3 imported posts" in trained.output
    assert "at least 10" in trained.output
    assert not (tmp_path / "index.db.personal" / "personalizer.pt").exists()


# -- the old layout: head and media beside the index, shared by every index in its folder -------


def old_layout(folder: Path, research_data: Path, owners: dict[str, list[int]]) -> dict[int, Path]:
    """Indexes in ``folder`` whose imported photos (Flickr photo numbers) sit in the shared
    ``instagram/`` there, with a ``personalizer.pt`` beside them, as older photobatch wrote it."""
    media = folder / "instagram"
    media.mkdir(parents=True)
    copies = {}
    for n, source in enumerate(flickr(research_data, 1 + max(max(v) for v in owners.values()))):
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        copies[n] = media / f"{sha}.jpg"
        shutil.copyfile(source, copies[n])
    for name, numbers in owners.items():
        with Index(folder / name) as index:
            posts = [
                Post(
                    f"{name}{n}",
                    None,
                    "#tag",
                    ["tag"],
                    [PostMedia("photo", "u", copies[n], copies[n].stem)],
                )
                for n in numbers
            ]
            index.write_posts(posts)
    (folder / "personalizer.pt").write_bytes(b"the head trained on one of them")
    return copies


def media_paths(index: Path) -> set[Path]:
    with Index(index) as db:
        return {m.path for p in db.posts() for m in p.media if m.path}


def test_an_old_layout_is_moved_to_its_only_index_with_a_message(
    research_data: Path, tmp_path: Path
) -> None:
    copies = old_layout(tmp_path, research_data, {"index.db": [0, 1, 2]})
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in copies.values()}
    result = photobatch(tmp_path / "index.db", "export", "--table", "posts", "--format", "csv")
    assert result.exit_code == 0, result.output
    own = tmp_path / "index.db.personal"
    assert (
        f"moved 3 imported photos from {tmp_path / 'instagram'} to {own / 'instagram'}"
        in result.output
    )
    assert f"personal head from {tmp_path / 'personalizer.pt'} to {own / 'personalizer.pt'}" in (
        result.output
    )
    assert not (tmp_path / "instagram").exists() and not (tmp_path / "personalizer.pt").exists()
    assert (own / "personalizer.pt").read_bytes() == b"the head trained on one of them"
    moved = media_paths(tmp_path / "index.db")
    assert moved == {own / "instagram" / name for name in digests}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in moved} == digests
    again = photobatch(tmp_path / "index.db", "export", "--table", "posts", "--format", "csv")
    assert "personal state" not in again.output


def test_two_indexes_in_the_old_folder_take_only_their_own(
    research_data: Path, tmp_path: Path
) -> None:
    copies = old_layout(tmp_path, research_data, {"a.db": [0, 1], "b.db": [1, 2]})
    first = photobatch(tmp_path / "a.db", "export", "--table", "posts", "--format", "csv")
    assert first.exit_code == 0, first.output
    assert "moved 2 imported photos" in first.output
    assert f"left {tmp_path / 'personalizer.pt'} where it is" in first.output
    assert (tmp_path / "personalizer.pt").is_file()
    a_media = media_paths(tmp_path / "a.db")
    assert a_media == {tmp_path / "a.db.personal" / "instagram" / copies[n].name for n in (0, 1)}
    assert all(p.is_file() for p in a_media)
    assert media_paths(tmp_path / "b.db") == {copies[1], copies[2]}  # untouched, still there
    assert copies[1].is_file() and copies[2].is_file() and not copies[0].exists()

    second = photobatch(tmp_path / "b.db", "status")
    assert "moved 2 imported photos" in second.output
    b_media = media_paths(tmp_path / "b.db")
    assert b_media == {tmp_path / "b.db.personal" / "instagram" / copies[n].name for n in (1, 2)}
    assert all(p.is_file() for p in b_media | a_media)
    assert not (tmp_path / "instagram").exists()


# -- an export without its media -------------------------------------------------------------------


def test_an_export_without_media_says_so_once_trains_and_the_counts_agree(
    research_data: Path, tmp_path: Path
) -> None:
    """Real exports often hold only the JSON: one line says so (``--verbose`` lists the files),
    the captions and hashtags still train the ranking, and import, train and status count the
    same posts."""
    kinds = [("beach", "#beach #sea #surfday"), ("dog", "#dog #goodboy"), ("city", "#city #mylife")]
    posts = [
        (1614600000 + 86400 * i, f"A {kinds[i % 3][0]} day {kinds[i % 3][1]}", [f"p{i}"])
        for i in range(15)
    ]
    export = write_export(tmp_path / "export", "2025", flickr(research_data, 15), posts, False)
    index = tmp_path / "index.db"
    imported = photobatch(index, "import-instagram", str(export), "--device", "cpu")
    assert imported.exit_code == 0, imported.output
    assert "imported 15 posts (15 new)" in imported.stdout
    assert imported.stderr.splitlines() == [
        "photobatch: 15 media files the posts name are not in the export (an export without its "
        "media?); 15 posts have no photo, and their captions and hashtags still teach your "
        "habits (--verbose lists the files)"
    ]
    verbose = photobatch(index, "import-instagram", str(export), "--device", "cpu", "--verbose")
    assert len(verbose.stderr.splitlines()) == 15 and "imported 15 posts (0 new)" in verbose.stdout
    trained = photobatch(index, "train", "personalizer")
    assert trained.exit_code == 0, trained.output
    assert "15 posts (0 with photos; under 10 photos: ranked by text habits)" in trained.stdout
    status = photobatch(index, "status")
    assert "profile:   15 posts" in status.stdout
    assert "trained (personalizer: 15 posts (0 with photos" in status.stdout
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(
        research_data / "flickr8k" / "images" / "1001773457_577c3a7d70.jpg", photos / "d.jpg"
    )
    scan = photobatch(index, "scan", "--no-sidecars", "--quiet", "--device", "cpu", str(photos))
    assert scan.exit_code == 0, scan.output
    tags, head = scanned(index, photos / "d.jpg")
    assert head is not None and {"dog", "goodboy"} <= set(tags), tags
