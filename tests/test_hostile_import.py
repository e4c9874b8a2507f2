"""Small hostile Instagram exports stay small: deep member names, a zip bomb, a post with 100,000
hashtags. Each is imported (what can be) or refused in one line; what they cost stays linear in
their size (``tests/hostile_inputs.py`` measures each; the figures are in docs/errors.md)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from cli_helpers import one_line
from click.testing import CliRunner
from hostile_inputs import deep_names_zip, index_with_a_post_of_100000_hashtags, zip_bomb
from test_instagram import photos, write_export  # noqa: F401 - photos is a fixture

from photobatch.cli import cli
from photobatch.instagram.export import ExportFile, SuffixIndex
from photobatch.library.index import Index


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--index", str(tmp_path / "index.db"), *args])
    return result.exit_code, result.output


def test_a_path_suffix_finds_the_first_file_registered_under_it() -> None:
    files = [ExportFile(name, name) for name in ("top/media/a.jpg", "media/a.jpg", "x/b.jpg")]
    index = SuffixIndex()
    for file in files:
        index.add(file.path.split("/"), file)
    assert index.get(["media", "a.jpg"]) is files[0]
    assert index.get(["a.jpg"]) is files[0]
    assert index.get(["top", "media", "a.jpg"]) is files[0]
    assert index.get(["b.jpg"]) is files[2]
    assert index.get(["other", "a.jpg"]) is None
    assert index.get(["deeper", "top", "media", "a.jpg"]) is None


def test_members_named_thousands_of_folders_deep_are_left_out(
    tmp_path: Path,
    photos: list[Path],  # noqa: F811 - the fixture
) -> None:
    """Every suffix of every name was indexed: 180 names 2,000 folders deep (1.5 MB of zip)
    took 787 MB, the issue's zip 4.8 GB."""
    export = write_export(tmp_path / "export", "2025", photos)
    archive = deep_names_zip(tmp_path / "export.zip", export)
    code, output = run(tmp_path, "import-instagram", str(archive))
    assert code == 0, output
    assert (
        "photobatch: 180 files named deeper than 32 folders or longer than 1024 characters, "
        "which no Instagram export has: left out"
    ) in output.splitlines()
    assert "imported 5 posts (5 new)" in output


def test_a_zip_bomb_of_photos_is_left_out(tmp_path: Path) -> None:
    """Ten members of 94 MB of zeros, 1 MB zipped, were copied as 944 MB of photos."""
    archive = zip_bomb(tmp_path / "export.zip")
    assert archive.stat().st_size < 1 << 20
    code, output = run(tmp_path, "import-instagram", str(archive))
    assert code == 0, output
    assert [line for line in output.splitlines() if "zip bomb" in line] == [
        f"photobatch: {archive}:media/{i}.jpg: unpacks to more than 100 times its compressed "
        "size, which no photo or export file does (a zip bomb): left out"
        for i in range(10)
    ]
    assert not any((tmp_path / "index.db.personal").rglob("*.jpg"))


def test_a_zip_whose_members_together_unpack_too_far_is_refused(tmp_path: Path) -> None:
    """2,000 members of 64 kB of zeros: each within its own limit (100 times its compressed
    size, plus 64 kB), 128 MB together from a zip of 0.4 MB: nothing is imported."""
    archive = tmp_path / "export.zip"
    posts = [{"media": [{"uri": f"m/{i}.jpg", "creation_timestamp": 1 + i}]} for i in range(2000)]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("your_instagram_activity/media/posts_1.json", json.dumps(posts))
        for i in range(2000):
            zf.writestr(f"m/{i}.jpg", bytes(64 << 10))
    result = CliRunner().invoke(
        cli, ["--index", str(tmp_path / "index.db"), "import-instagram", str(archive)]
    )
    assert one_line(result).endswith(
        "the zip unpacks to more than 100 times its size, which an Instagram export never does "
        "(a zip bomb); nothing was imported"
    )
    assert not any((tmp_path / "index.db.personal").rglob("*.jpg"))


def test_a_post_with_100000_hashtags_keeps_the_30_instagram_allows(
    tmp_path: Path,
    photos: list[Path],  # noqa: F811 - the fixture
) -> None:
    many = " ".join(f"#t{n}" for n in range(100_000))
    posts = [(1_600_000_000, "#dog " + many, ["p0"]), (1_600_100_000, "#dog #beach", ["p1"])]
    export = write_export(tmp_path / "export", "2025", photos, posts)
    code, output = run(tmp_path, "import-instagram", str(export))
    assert code == 0, output
    assert "more than the 30 hashtags Instagram allows: the first 30 kept" in output
    with Index(tmp_path / "index.db") as index:
        kept = sorted(p.hashtags for p in index.posts())
    assert kept == [["dog", "beach"], ["dog", *[f"t{n}" for n in range(29)]]]


def test_training_on_an_earlier_import_of_a_post_with_100000_hashtags_stays_small(
    tmp_path: Path,
) -> None:
    """An index imported before the limit holds all 100,000: training paired every tag with
    every tag (22 GB when tried here). It reads the first 30, as an import now keeps."""
    index_with_a_post_of_100000_hashtags(tmp_path / "index.db")
    code, output = run(tmp_path, "train", "personalizer")
    assert code == 0, output
    match = re.match(r"personalizer: 12 posts \(12 with photos\), (\d+) tags", output)
    assert match, output
    assert int(match.group(1)) <= 2 + 30  # dog, beach, the first 30 of the 100,000
