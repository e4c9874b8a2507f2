"""`photobatch search` finds what is in the photo: grounded objects, hashtags and captions, a
multi-word name as one term, surest first, with one clear line when there is nothing to show."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from cli_helpers import one_line
from click.testing import CliRunner, Result

from photobatch.cli import cli
from photobatch.core.records import Analysis, FoundFile, PhotoRow
from photobatch.library.index import Index
from photobatch.library.schema import MIGRATIONS, SCHEMA_VERSION
from photobatch.library.search import SearchQueryError

PHOTOS = {
    "hotdog.jpg": Analysis(
        "1" * 64,
        caption="Two hot dogs on a bun on a plate.",
        caption_confidence=0.9,
        hashtags=["hotdog", "food"],
        candidate_scores={"hotdog": 0.9, "food": 0.8},
        objects={"hot dog": 0.9},
    ),
    "puppy.jpg": Analysis(
        "2" * 64,
        caption="A puppy runs on the grass.",
        caption_confidence=0.8,
        hashtags=["puppy", "grass"],
        objects={"dog": 0.6},
    ),
    "dogs.jpg": Analysis(
        "3" * 64,
        caption="Two dogs play in the snow.",
        caption_confidence=0.7,
        hashtags=["dog", "snow"],
        objects={"dog": 0.97},
    ),
    "pizza.jpg": Analysis(  # a caption that names no object: found by its grounded object
        "4" * 64,
        caption="A plate of food on a table.",
        caption_confidence=0.95,
        objects={"pizza": 0.88, "cup": 0.6},
    ),
}


def library(tmp_path: Path) -> Path:
    db = tmp_path / "index.db"
    with Index(db) as index:
        index.write_batch(
            [
                PhotoRow(FoundFile(tmp_path / name, 1, 1), "ok", a.sha256)
                for name, a in PHOTOS.items()
            ],
            list(PHOTOS.values()),
        )
    return db


def found(db: Path, query: str) -> list[str]:
    with Index(db) as index:
        return [Path(h.path).name for h in index.search(query, None)]


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--index", str(db), "search", *args])


def test_a_dog_is_not_a_hot_dog_and_dogs_rank_by_how_sure_grounding_is(tmp_path: Path) -> None:
    db = library(tmp_path)
    assert found(db, "dog") == ["dogs.jpg", "puppy.jpg"]  # 0.97 before 0.6; no hot dog
    assert found(db, "dogs") == ["dogs.jpg", "puppy.jpg"]
    assert found(db, "hot dog") == found(db, "hotdog") == found(db, '"hot dog"') == ["hotdog.jpg"]
    assert found(db, "puppy") == ["puppy.jpg"]
    assert found(db, "pizza") == found(db, "cup") == ["pizza.jpg"]
    # A caption word ranks by the caption's confidence (0.95), a hashtag by its evidence (0.8).
    assert found(db, "food") == ["pizza.jpg", "hotdog.jpg"]
    assert found(db, "dog snow") == ["dogs.jpg"]  # every word must match
    assert found(db, "dog OR pizza") == ["dogs.jpg", "pizza.jpg", "puppy.jpg"]


def test_the_command_prints_path_sureness_and_caption_surest_first(tmp_path: Path) -> None:
    db = library(tmp_path)
    result = run(db, "dog")
    assert result.exit_code == 0 and not result.stderr, result.output
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'dogs.jpg'}\t0.97\tTwo dogs play in the snow.",
        f"{tmp_path / 'puppy.jpg'}\t0.60\tA puppy runs on the grass.",
    ]
    for limit in ("1", "99999999999999999999"):
        result = run(db, "dog", "--limit", limit)
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == min(int(limit), 2)


def test_nothing_found_and_an_empty_library_are_told_apart(tmp_path: Path) -> None:
    db = library(tmp_path)
    assert one_line(run(db, "giraffe")) == (
        "photobatch: no photo matches 'giraffe' (searched 4 analysed photos)"
    )
    empty = tmp_path / "empty.db"
    Index(empty).close()
    assert one_line(run(empty, "dog")) == (
        f"photobatch: {empty}: no analysed photos to search yet: run 'photobatch scan FOLDER' first"
    )


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "photobatch: search: the query is empty: give a word to look for"),
        ("   ", "photobatch: search: the query is empty: give a word to look for"),
        ("...", "photobatch: search: '...' has no words to look for"),
        ('"', """photobatch: search: '"' is not a query SQLite's full-text search understands"""),
        ("NEAR(", "photobatch: search: 'NEAR(' is not a query SQLite's full-text search"),
        ("nocolumn:dog", "photobatch: search: 'nocolumn:dog' is not a query SQLite's full-text"),
    ],
)
def test_a_query_that_cannot_be_searched_is_named_as_the_problem(
    tmp_path: Path, query: str, problem: str
) -> None:
    db = library(tmp_path)
    line = one_line(run(db, query))
    assert line.startswith(problem), line
    assert "damaged" not in line and str(db) not in line
    with Index(db) as index, pytest.raises(SearchQueryError):
        index.search(query)


def test_an_index_of_the_release_before_is_searched_the_new_way(tmp_path: Path) -> None:
    """Upgrading keeps every photo findable by its caption, without the 'hot dog' mistake."""
    db = tmp_path / "index.db"
    old = sqlite_utils.Database(db)
    for migrate in MIGRATIONS[:4]:
        migrate(old)
    old.execute("PRAGMA user_version = 4")
    for name, (sha, caption) in {"a.jpg": ("a", "A hot dog."), "b.jpg": ("b", "Dogs run.")}.items():
        old["photos"].insert({"path": str(tmp_path / name), "sha256": sha * 64, "status": "ok"})
        old["analyses"].insert(
            {"sha256": sha * 64, "caption": caption, "hashtags": "[]", "labels": '["hotdog"]'}
        )
    old.conn.commit()
    old.close()
    with Index(db) as index:
        assert index.schema_version == SCHEMA_VERSION
        assert [Path(h.path).name for h in index.search("dog")] == ["b.jpg"]
        assert [Path(h.path).name for h in index.search("hot dog")] == ["a.jpg"]
    with sqlite3.connect(db) as con:  # the index stays a plain SQLite file with FTS5
        rows = con.execute(
            "SELECT a.caption FROM analyses_fts f JOIN analyses a ON a.rowid = f.rowid "
            "WHERE analyses_fts MATCH 'dog'"
        ).fetchall()
    assert rows == [("Dogs run.",)]


def scanned(research_data: Path, tmp_path: Path, sources: dict[str, str]) -> tuple[Path, Path]:
    """A folder of these research photos under new names, scanned (no sidecars): (folder, index)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, source in sources.items():
        shutil.copyfile(research_data / source, photos / name)
    db = tmp_path / "index.db"
    scan = CliRunner().invoke(cli, ["--index", str(db), "scan", "--no-sidecars", "-q", str(photos)])
    assert scan.exit_code == 0, scan.output
    return photos, db


def test_search_on_real_photos_finds_the_dogs_and_not_the_hot_dog(
    research_data: Path, tmp_path: Path
) -> None:
    """A scanned folder: two real dogs, a hot dog, a cheeseburger and a ram. 'dog' finds the
    dogs only, 'hot dog' the hot dog, and no hashtag of the others names a dog."""
    photos, db = scanned(
        research_data,
        tmp_path,
        {
            "dog1.jpg": "flickr8k/images/1026685415_0431cbf574.jpg",
            "dog2.jpg": "broad/coco-dev/000000418049.jpg",
            "hotdog.jpg": "broad/imagenet/n07697537.jpg",
            "burger.jpg": "broad/imagenet/n07697313.jpg",
            "ram.jpg": "broad/imagenet/n02412080.jpg",
        },
    )
    assert sorted(found(db, "dog")) == ["dog1.jpg", "dog2.jpg"]
    assert found(db, "hot dog") == ["hotdog.jpg"]
    with Index(db) as index:
        for name in ("hotdog.jpg", "burger.jpg", "ram.jpg"):
            record = index.record(photos / name)
            assert record is not None and record.analysis is not None
            assert "dog" not in record.analysis.objects
            assert not {"dog", "dogsofinstagram", "puppy", "pet"} & set(record.analysis.hashtags)
    exported = json.loads(
        CliRunner()
        .invoke(cli, ["--index", str(db), "show", "--json", str(photos / "dog1.jpg")])
        .output
    )
    assert exported["objects"]["dog"] >= 0.5


def test_search_finds_what_the_caption_leaves_out_surest_first(
    research_data: Path, tmp_path: Path
) -> None:
    """Search has its own operating point: an object the heads find likely (p >= 0.4) but not
    sure enough for a caption still finds the photo. A cat on a toilet captioned "A bathroom
    with a toilet." is found by 'cat'; a couple at a table with a pizza by 'pizza', after the
    pizza ImageNet is sure of; the ram is found by neither."""
    from photobatch.models.grounding import Thresholds

    photos, db = scanned(
        research_data,
        tmp_path,
        {
            "bathroom-cat.jpg": "broad/coco-dev/000000358083.jpg",
            "table-pizza.jpg": "broad/coco-dev/000000488571.jpg",
            "pizza.jpg": "broad/imagenet/n07873807.jpg",
            "ram.jpg": "broad/imagenet/n02412080.jpg",
        },
    )
    with Index(db) as index:
        cat = index.record(photos / "bathroom-cat.jpg")
        assert cat is not None and cat.analysis is not None
        assert "cat" not in (cat.analysis.caption or "")
        assert Thresholds().search <= cat.analysis.objects["cat"] < Thresholds().object
    assert found(db, "cat") == ["bathroom-cat.jpg"]
    assert found(db, "pizza") == ["pizza.jpg", "table-pizza.jpg"]
