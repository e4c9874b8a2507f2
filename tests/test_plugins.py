"""Plugins: the after-analysis and after-commit hooks, plugin commands, ``photobatch plugins``.

The end-to-end tests install third-party plugins the way pip leaves them: a module and its
``*.dist-info`` (METADATA, entry_points.txt in the ``photobatch`` group) in a folder on
PYTHONPATH, where importlib.metadata finds them like any installed distribution. The first is
the example of ``docs/plugins.md``, taken from the page itself. Scans run in a child process on
real photos; the index is read back with the sqlite3 client and the sidecars with exiftool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from photobatch.core.config import load_config
from photobatch.core.hooks import (
    AnalysedPhoto,
    after_analysis,
    hookimpl,
    plugin_manager,
    register_commands,
)
from photobatch.core.records import Analysis, PhotoMetadata, PhotoRecord
from photobatch.library.index import Index
from photobatch.library.reviews import Card
from photobatch.review.cards import CardView, render_card
from photobatch.scan.pipeline import Scanner

DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"
FLICKR = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg"]


# -- in this process ------------------------------------------------------------------------------


def models_output() -> Analysis:
    return Analysis(
        sha256="a" * 64,
        labels=["seashore", "sandbar"],
        candidates=["beach", "sea", "sunset", "photooftheday"],
        candidate_scores={"beach": 0.9, "sea": 0.7, "sunset": 0.5, "photooftheday": 0.0},
        models="m@1",
    )


class Recorder:
    """A plugin object whose after-analysis hook runs ``change`` on every photo."""

    def __init__(self, change: object) -> None:
        self.change = change

    @hookimpl
    def photobatch_after_analysis(self, photos: list[AnalysedPhoto]) -> None:
        for photo in photos:
            self.change(photo)  # type: ignore[operator]


@pytest.fixture
def installed() -> Iterator[list[str]]:
    """Registers plugin objects on the process's manager (by name) and removes them after."""
    names: list[str] = []
    yield names
    for name in names:
        plugin_manager().unregister(name=name)


def install(names: list[str], name: str, plugin: object) -> None:
    plugin_manager().register(plugin, name)
    names.append(name)


def test_a_plugin_adds_drops_and_rescores_with_provenance_and_the_models_output_comes_back(
    installed: list[str],
) -> None:
    def faces(photo: AnalysedPhoto) -> None:
        assert photo.hashtags == {"beach": 0.9, "sea": 0.7, "sunset": 0.5, "photooftheday": 0.0}
        photo.set_hashtag("#Portrait", 0.8)
        photo.set_hashtag("sunset", 0.95)  # re-scored: ranks first, still the photo's
        photo.drop_hashtag("photooftheday")
        photo.add_label("face")
        photo.drop_label("sandbar")

    install(installed, "faces", Recorder(faces))
    photo = AnalysedPhoto(Path("/p/a.jpg"), PhotoMetadata(), models_output())
    problems: list[str] = []
    [result] = after_analysis([photo], problems)
    assert problems == []
    assert result.candidates == ["sunset", "beach", "portrait", "sea"]
    assert result.candidate_scores == {"sunset": 0.95, "beach": 0.9, "portrait": 0.8, "sea": 0.7}
    assert result.labels == ["seashore", "face"]
    assert result.plugins == "faces@0.1.0"  # registered here, not by a package: photobatch's
    assert result.added_by("portrait") == "faces" and result.added_by("sunset") is None
    assert result.plugin_changes is not None and result.plugin_changes.labels == {"face": "faces"}
    back = result.unplugged()
    original = models_output()
    assert (back.candidates, back.candidate_scores, back.labels) == (
        original.candidates,
        original.candidate_scores,
        original.labels,
    )
    assert back.plugins is None and back.plugin_changes is None


def test_a_plugin_that_raises_keeps_none_of_its_changes_and_the_others_keep_theirs(
    installed: list[str],
) -> None:
    def good(photo: AnalysedPhoto) -> None:
        photo.set_hashtag("kept", 0.6)

    def bad(photo: AnalysedPhoto) -> None:
        photo.set_hashtag("lost", 1.0)
        if photo.path.name == "b.jpg":
            photo.set_hashtag("two words", 0.5)  # not one hashtag: ValueError

    install(installed, "good", Recorder(good))
    install(installed, "bad", Recorder(bad))
    photos = [
        AnalysedPhoto(Path(f"/p/{n}"), PhotoMetadata(), models_output()) for n in ("a.jpg", "b.jpg")
    ]
    problems: list[str] = []
    results = after_analysis(photos, problems)
    assert problems == [
        "plugin bad: photobatch_after_analysis failed: ValueError: 'two words' is not one "
        "hashtag; its changes to 2 photos were not kept (tried again next scan)"
    ]
    for result in results:
        assert "kept" in result.candidates and "lost" not in result.candidates
        assert result.plugins == "good@0.1.0"  # bad is not recorded: the next scan retries it


@pytest.mark.parametrize("score", [-0.1, 1.5, float("nan"), "0.5", True])
def test_a_score_outside_zero_to_one_is_refused(score: object) -> None:
    photo = AnalysedPhoto(Path("/p/a.jpg"), PhotoMetadata(), models_output())
    with pytest.raises(ValueError, match="not a number from 0 to 1"):
        photo.set_hashtag("dog", score)  # type: ignore[arg-type]


def test_the_review_page_shows_a_plugins_hashtag_as_its_own(installed: list[str]) -> None:
    install(installed, "faces", Recorder(lambda photo: photo.set_hashtag("portrait", 0.8)))
    [plugged] = after_analysis([AnalysedPhoto(Path("/p"), PhotoMetadata(), models_output())], [])
    plugged.hashtags = plugged.candidates[:3]
    card = Card(PhotoRecord(Path("/p/a.jpg"), plugged.sha256, "ok", analysis=plugged))
    html = render_card(CardView.of(card), "/thumb/a", interactive=False)
    assert re.search(r'class="chip plugin" title="added by the plugin faces">#portrait<', html)
    assert 'class="chip photo" title="from the photo">#beach<' in html


def test_a_plugin_may_add_commands_but_not_replace_one() -> None:
    @click.group()
    def group() -> None:
        """A stand-in for photobatch's group."""

    @group.command()
    def scan() -> None:
        click.echo("the real scan")

    class Commands:
        @hookimpl
        def photobatch_register_commands(self, cli: click.Group) -> None:
            @cli.command("hello")
            def hello() -> None:
                click.echo("hello from a plugin")

            @cli.command("scan")
            def fake_scan() -> None:
                click.echo("a plugin's scan")

    plugin_manager().register(Commands(), "commands")
    try:
        problems: list[str] = []
        register_commands(group, problems)
    finally:
        plugin_manager().unregister(name="commands")
    assert problems == ["plugin commands: may not replace the command scan"]
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"
    assert CliRunner().invoke(group, ["scan"]).output == "the real scan\n"


def test_both_engines_run_the_hook_on_the_driver_alone(
    installed: list[str], research_data: Path, tmp_path: Path
) -> None:
    # The plugin is registered in this process only: the Ray workers never see it, and the
    # results are the local engine's all the same.
    if not os.environ.get("CI"):
        pytest.importorskip("ray")

    def tag(photo: AnalysedPhoto) -> None:
        photo.set_hashtag("driverside", 1.0)

    install(installed, "driver", Recorder(tag))
    root = tmp_path / "photos"
    root.mkdir()
    for name in FLICKR[:2]:
        shutil.copyfile(research_data / "flickr8k" / "images" / name, root / name)
    stored = {}
    for engine in ("local", "ray"):
        config = load_config(None, index=tmp_path / f"{engine}.db")
        with Index(config.index) as index:
            with Scanner(config, index, sidecars=False, progress=False, engine=engine) as scanner:  # type: ignore[arg-type]
                assert scanner.scan([root]).analyzed == 2
            records = [index.record(root / name) for name in FLICKR[:2]]
        stored[engine] = [(r.analysis.hashtags, r.analysis.plugins) for r in records]  # type: ignore[union-attr]
    assert stored["ray"] == stored["local"]
    assert all(
        tags[0] == "driverside" and plugins == "driver@0.1.0" for tags, plugins in stored["ray"]
    )


# -- installed as packages, in a child process ---------------------------------------------------


def distribution(site: Path, name: str, module: str, source: str, version: str = "0.1") -> None:
    """Install ``source`` as module ``module`` of distribution ``photobatch-<name>`` whose
    ``photobatch`` entry point ``name`` names it, the way pip leaves a package on disk."""
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"photobatch_{name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    metadata = f"Metadata-Version: 2.1\nName: photobatch-{name}\nVersion: {version}\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[photobatch]\n{name} = {module}\n", encoding="utf-8")


def example_plugin() -> str:
    """The example module of docs/plugins.md, as the page shows it."""
    page = DOCS.read_text(encoding="utf-8").split("\n## An example", 1)[1]
    return page.split("```python\n", 1)[1].split("\n```", 1)[0] + "\n"


def photobatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photobatch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


def sqlite_rows(index: Path) -> dict[str, dict[str, object]]:
    """Each photo's analysis, read with the sqlite3 client; JSON columns decoded."""
    sql = (
        "SELECT photos.path, hashtags, candidates, candidate_scores, labels, plugins, "
        "plugin_changes FROM photos JOIN analyses USING (sha256) ORDER BY photos.path"
    )
    out = subprocess.run(
        ["sqlite3", "-json", str(index), sql], capture_output=True, text=True, check=True
    ).stdout
    rows = json.loads(out or "[]")
    for row in rows:
        for key in ("hashtags", "candidates", "candidate_scores", "labels", "plugin_changes"):
            row[key] = json.loads(row[key]) if row[key] else None
    return {Path(row.pop("path")).name: row for row in rows}


def xmp_keywords(photo: Path) -> list[str]:
    out = subprocess.run(
        ["exiftool", "-j", "-XMP-dc:Subject", f"{photo}.xmp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    subject = json.loads(out)[0].get("Subject", [])
    return [str(s) for s in (subject if isinstance(subject, list) else [subject])]


@pytest.fixture(scope="module")
def framed(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scan of three Flickr8k photos (square) and a landscape camera photo with the example
    plugin installed."""
    base = tmp_path_factory.mktemp("framing")
    site, photos = base / "site", base / "photos"
    site.mkdir()
    photos.mkdir()
    distribution(site, "framing", "photobatch_framing", example_plugin())
    for name in FLICKR:
        shutil.copyfile(research_data / "flickr8k" / "images" / name, photos / name)
    shutil.copyfile(research_data / "exif-samples" / "jpg" / "Canon_40D.jpg", photos / "canon.jpg")
    env = {"PYTHONPATH": str(site), "PHOTOBATCH_FRAMING_LOG": str(base / "framing.jsonl")}
    index = base / "index.db"
    scan = photobatch("--index", str(index), "scan", str(photos), env=env)
    assert scan.returncode == 0, scan.stderr
    assert scan.stderr == ""  # no plugin problem, nothing else
    return {"photos": photos, "index": index, "site": site, "base": base, **env}  # type: ignore[dict-item]


def test_an_installed_plugins_tags_reach_the_index_and_the_sidecars(framed: dict) -> None:
    rows = sqlite_rows(framed["index"])
    assert set(rows) == {*FLICKR, "canon.jpg"}
    for name, row in rows.items():
        shape = "landscape" if name == "canon.jpg" else "square"
        assert shape in row["hashtags"], row
        assert f"{shape} frame" in row["labels"]
        assert "photooftheday" not in row["candidates"]
        assert row["plugins"] == "framing@0.1"
        changes = row["plugin_changes"]
        assert changes["tags"] == {shape: "framing"}
        assert changes["labels"] == {f"{shape} frame": "framing"}
        assert shape not in changes["model_candidates"]  # the models' own output, kept
        assert row["candidate_scores"][shape] == 1.0
        assert row["hashtags"][0] == shape  # scored 1 by a plugin: before the models' 1s
        assert shape in xmp_keywords(framed["photos"] / name)
    with Index(framed["index"], create=False) as index:
        record = index.record(framed["photos"] / FLICKR[0])
    assert record is not None and record.sha256 is not None
    html = render_card(CardView.of(Card(record)), "/thumb/x", interactive=False)
    assert 'class="chip plugin" title="added by the plugin framing">#square<' in html
    shown = photobatch(
        "--index", str(framed["index"]), "show", str(framed["photos"] / FLICKR[0]), env={}
    )
    assert "\nplugins:" in shown.stdout and shown.stdout.rstrip().endswith(" framing@0.1")


def test_plugins_lists_it_with_its_hooks_and_its_command_runs(framed: dict) -> None:
    env = {k: framed[k] for k in ("PYTHONPATH", "PHOTOBATCH_FRAMING_LOG")}
    listed = photobatch("plugins", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1] == (
        "framing (photobatch-framing 0.1): photobatch_after_analysis, photobatch_after_commit, "
        "photobatch_register_commands"
    )
    assert "photobatch.plugins.xmp (photobatch " in listed.stdout
    as_json = json.loads(photobatch("plugins", "--json", env=env).stdout)
    assert as_json["plugins"][-1]["package"] == "photobatch-framing"
    assert as_json["problems"] == []
    # the after-commit hook saw every committed photo, with its final hashtags
    log = photobatch("framing-log", env=env)
    assert log.returncode == 0, log.stderr
    assert log.stdout == "3 square, 0 portrait, 1 landscape, 0 panorama\n"


def test_removing_the_plugin_restores_the_models_output_without_the_models(framed: dict) -> None:
    before = sqlite_rows(framed["index"])
    rescan = photobatch("--index", str(framed["index"]), "scan", str(framed["photos"]), env={})
    assert rescan.returncode == 0, rescan.stderr
    assert "; 0 analysed" in rescan.stdout and "4 re-tagged by changed plugins" in rescan.stdout
    for name, row in sqlite_rows(framed["index"]).items():
        models = before[name]["plugin_changes"]
        assert row["plugins"] is None and row["plugin_changes"] is None
        assert row["candidates"] == models["model_candidates"]  # type: ignore[index]
        assert row["labels"] == models["model_labels"]  # type: ignore[index]
        assert not {"square", "landscape"} & set(xmp_keywords(framed["photos"] / name))
    assert "framing" not in photobatch("plugins", env={}).stdout


FLAKY = """
import os

import click

from photobatch.core.hooks import hookimpl


@hookimpl
def photobatch_after_analysis(photos):
    for photo in photos:
        photo.set_hashtag("flaky", 1.0)
    if os.environ.get("FLAKY_FAILS"):
        raise RuntimeError("the detector crashed")


@hookimpl
def photobatch_register_commands(cli):
    @cli.command("scan")
    def scan():
        click.echo("not the scan")
"""


TYPO = """
from photobatch.core.hooks import hookimpl


@hookimpl
def photobatch_after_analyse(photos):
    pass
"""


def test_broken_plugins_are_reported_and_a_failed_hook_is_retried_without_the_models(
    research_data: Path, tmp_path: Path
) -> None:
    site, photos = tmp_path / "site", tmp_path / "photos"
    site.mkdir()
    photos.mkdir()
    distribution(site, "flaky", "photobatch_flaky", FLAKY)
    distribution(site, "broken", "photobatch_broken", "import a_module_nobody_installed\n")
    distribution(site, "typo", "photobatch_typo", TYPO)
    for name in FLICKR[:2]:
        shutil.copyfile(research_data / "flickr8k" / "images" / name, photos / name)
    index = tmp_path / "index.db"
    env = {"PYTHONPATH": str(site), "FLAKY_FAILS": "1"}

    first = photobatch("--index", str(index), "scan", str(photos), env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0].startswith(
        "photobatch: plugin broken (photobatch-broken): not loaded: ModuleNotFoundError: "
        "No module named 'a_module_nobody_installed'"
    )
    assert lines[1].startswith(
        "photobatch: plugin typo (photobatch-typo): not loaded: PluginValidationError: "
    )
    assert "photobatch_after_analyse" in lines[1]
    assert lines[2] == "photobatch: plugin flaky: may not replace the command scan"
    assert lines[3] == (
        "photobatch: plugin flaky: photobatch_after_analysis failed: RuntimeError: the detector "
        "crashed; its changes to 2 photos were not kept (tried again next scan)"
    )
    assert len(lines) == 4, first.stderr
    assert "1 plugin errors" in first.stdout and "2 analysed" in first.stdout
    for name, row in sqlite_rows(index).items():  # committed with the models' output
        assert row["plugins"] is None and "flaky" not in row["hashtags"]  # type: ignore[operator]
        assert row["hashtags"] and xmp_keywords(photos / name) == row["hashtags"]

    fixed = photobatch("--index", str(index), "scan", str(photos), env={"PYTHONPATH": str(site)})
    assert fixed.returncode == 0, fixed.stderr
    assert "; 0 analysed" in fixed.stdout and "2 re-tagged by changed plugins" in fixed.stdout
    for name, row in sqlite_rows(index).items():
        assert row["plugins"] == "flaky@0.1"
        assert row["hashtags"][0] == "flaky"  # type: ignore[index]
        assert xmp_keywords(photos / name)[0] == "flaky"
