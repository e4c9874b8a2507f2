"""The JSON sidecar: what a script reading it sees, and that other tools' keys survive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photobatch.core.hooks import SidecarError, sidecar_writers
from photobatch.core.records import Analysis, PhotoMetadata, PhotoRecord
from photobatch.plugins.json_sidecar import JsonWriter

WRITER = JsonWriter()


def record(
    caption: str | None = "A dog on a beach", hashtags: list[str] | None = None
) -> PhotoRecord:
    return PhotoRecord(
        path=Path("/photos/2024/IMG_0001.jpg"),
        sha256="ab" * 32,
        status="ok",
        metadata=PhotoMetadata(
            taken_at="2024-07-01T18:30:00+02:00", camera_make="FUJIFILM", lat=43.3, lon=5.4
        ),
        analysis=Analysis(
            sha256="ab" * 32,
            labels=["golden retriever", "seashore"],
            caption=caption,
            hashtags=["dog", "beach"] if hashtags is None else hashtags,
            post_text="Beach day with the dog #dog #beach",
        ),
    )


def test_writer_is_discovered() -> None:
    writer = sidecar_writers()["json"]
    assert (writer.name, writer.suffix) == ("json", ".json")


def test_content() -> None:
    data = json.loads(WRITER.render(record(), None))
    assert data["name"] == "IMG_0001.jpg"
    assert data["sha256"] == "ab" * 32
    assert data["caption"] == "A dog on a beach"
    assert data["hashtags"] == ["#dog", "#beach"]
    assert data["labels"] == ["golden retriever", "seashore"]
    assert data["post_text"] == "Beach day with the dog #dog #beach"
    assert data["metadata"]["taken_at"] == "2024-07-01T18:30:00+02:00"
    assert data["metadata"]["camera_make"] == "FUJIFILM"
    assert data["metadata"]["lat"] == 43.3


def test_pretty_sorted_and_deterministic() -> None:
    content = WRITER.render(record(), None)
    text = content.decode("utf-8")
    assert text.endswith("\n") and '\n  "caption"' in text
    keys = list(json.loads(content))
    assert keys == sorted(keys)
    assert WRITER.render(record(), content) == content
    assert WRITER.render(record(), None) == content


def test_unicode_is_written_readably() -> None:
    content = WRITER.render(record("Ein Hund am Strand — 海辺の犬 🐕", ["café", "犬"]), None)
    assert "海辺の犬 🐕".encode() in content
    assert json.loads(content)["hashtags"] == ["#café", "#犬"]


def test_keeps_keys_other_tools_added() -> None:
    theirs = {"rating": 5, "album": "Summer", "caption": "old photobatch caption"}
    content = WRITER.render(record(caption="A cat"), json.dumps(theirs).encode())
    data = json.loads(content)
    assert data["rating"] == 5 and data["album"] == "Summer"
    assert data["caption"] == "A cat"
    assert WRITER.render(record(caption="A cat"), content) == content


def test_no_analysis_yet() -> None:
    bare = PhotoRecord(path=Path("x.png"), sha256=None, status="ok")
    data = json.loads(WRITER.render(bare, None))
    assert data["caption"] is None and data["hashtags"] == [] and data["labels"] == []


def test_broken_gps_is_written_as_unknown() -> None:
    rec = record()
    rec.metadata.lat = float("nan")
    assert json.loads(WRITER.render(rec, None))["metadata"]["lat"] is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"a": 1', b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"just a string"'],
    ids=["syntax", "truncated", "binary", "array", "string"],
)
def test_invalid_existing_file_raises(content: bytes) -> None:
    with pytest.raises(SidecarError):
        WRITER.render(record(), content)


@settings(max_examples=50, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1).filter(
            lambda k: (
                k
                not in {"name", "sha256", "metadata", "caption", "hashtags", "labels", "post_text"}
            )
        ),
        st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=5),
        max_size=5,
    )
)
def test_unknown_keys_always_survive(extra: dict) -> None:
    content = WRITER.render(record(), json.dumps(extra).encode())
    data = json.loads(content)
    assert {k: data[k] for k in extra} == extra
    assert WRITER.render(record(), content) == content
