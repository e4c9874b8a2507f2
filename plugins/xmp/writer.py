"""``XmpWriter``: the sidecar writer that parses, merges and serializes a packet."""

from __future__ import annotations

import re

from photobatch.core.hooks import SidecarError
from photobatch.core.records import PhotoRecord

from .merge import find_property, merge_caption, merge_keywords
from .parse import descriptions_of, new_packet, parse_packet
from .serialize import serialize
from .vocabulary import KEYWORD_PROPERTIES, LEDGERS

# Characters XML 1.0 cannot carry; a keyword holding one would make the sidecar unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class XmpWriter:
    """Merges photobatch's keywords and caption into an XMP sidecar."""

    name = "xmp"
    suffix = ".xmp"

    def render(self, record: PhotoRecord, existing: bytes | None) -> bytes:
        """Return the merged sidecar; raise ``SidecarError`` rather than risk the user's data."""
        if existing is None or not existing.strip():
            root, declared = new_packet(), []
        else:
            root, declared = parse_packet(existing)
        descriptions = descriptions_of(root)
        keywords = clean_keywords(record.keywords)
        for prop in KEYWORD_PROPERTIES:
            merge_keywords(descriptions, prop, keywords)
        caption = record.analysis.caption if record.analysis else None
        merge_caption(descriptions, _NOT_XML.sub("", caption) if caption else None)
        return serialize(root, declared)

    def wrote(self, existing: bytes) -> bool:
        """Whether photobatch wrote into ``existing``: its ledger is there."""
        try:
            descriptions = descriptions_of(parse_packet(existing)[0])
        except SidecarError:
            return False
        return any(find_property(descriptions, name) is not None for name in LEDGERS)


def clean_keywords(keywords: list[str]) -> list[str]:
    """Keywords as they can be stored: XML-safe, trimmed, non-empty, once each (ignoring case)."""
    seen: set[str] = set()
    cleaned = []
    for keyword in keywords:
        keyword = _NOT_XML.sub("", keyword).strip()
        if keyword and keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            cleaned.append(keyword)
    return cleaned
