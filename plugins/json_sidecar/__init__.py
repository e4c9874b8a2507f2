"""The JSON sidecar writer: everything photobatch knows about a photo, for scripts and other tools.

The file may be shared with other tools, so a render replaces only photobatch's own top-level keys
and keeps every other key as it was. Output is pretty, key-sorted and deterministic, so the core can
skip the write when nothing changed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from photobatch.core.hooks import SidecarError, hookimpl
from photobatch.core.records import PhotoRecord
from photobatch.core.text import format_hashtag

# Sidecars other tools write nest a few levels; a file nested far deeper is refused when parsed,
# so writing it back (``json.dumps`` recurses per level) cannot run out of stack.
MAX_DEPTH = 100


class JsonWriter:
    """Writes photobatch's keys into a JSON object, keeping keys other tools added."""

    name = "json"
    suffix = ".json"

    def render(self, record: PhotoRecord, existing: bytes | None) -> bytes:
        """Return the merged JSON object; raise ``SidecarError`` for a file that is not one."""
        merged = _load(existing) if existing is not None and existing.strip() else {}
        merged.update(photobatch_fields(record))
        text = json.dumps(merged, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False)
        return (text + "\n").encode("utf-8")

    def wrote(self, existing: bytes) -> bool:
        """Whether photobatch wrote ``existing``: it names a photo and its content hash."""
        try:
            return {"name", "sha256"} <= _load(existing).keys()
        except SidecarError:
            return False


def photobatch_fields(record: PhotoRecord) -> dict[str, Any]:
    """The top-level keys photobatch owns in the sidecar."""
    analysis = record.analysis
    return {
        "name": record.path.name,
        "sha256": record.sha256,
        "metadata": {key: _finite(value) for key, value in asdict(record.metadata).items()},
        "caption": analysis.caption if analysis else None,
        "hashtags": [format_hashtag(tag) for tag in analysis.hashtags] if analysis else [],
        "labels": list(analysis.labels) if analysis else [],
        "post_text": analysis.post_text if analysis else None,
    }


def _finite(value: Any) -> Any:
    """NaN and infinity have no JSON spelling; a broken GPS value is better written as unknown."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _load(existing: bytes) -> dict[str, Any]:
    too_deep = SidecarError(f"values nested more than {MAX_DEPTH} deep")
    try:
        data = json.loads(existing.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the decoder's own limit, reached before MAX_DEPTH is checked
        raise too_deep from exc
    if not isinstance(data, dict):
        raise SidecarError(f"not a JSON object (found a {type(data).__name__})")
    if _depth(data) > MAX_DEPTH:
        raise too_deep
    return data


def _depth(value: Any) -> int:
    """How deeply ``value``'s lists and objects nest, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in value)
    return deepest


@hookimpl
def photobatch_sidecar_writers() -> list[JsonWriter]:
    """photobatch's own JSON writer, registered like any third-party plugin."""
    return [JsonWriter()]
