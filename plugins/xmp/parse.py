"""Reading an existing XMP packet: with defusedxml (sidecars arrive from anywhere), keeping
comments and the file's namespace prefixes, refusing absurd nesting."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from photobatch.core.hooks import SidecarError

from .vocabulary import RDF_ABOUT, RDF_DESCRIPTION, RDF_RDF, XMPMETA

# Real applications nest XMP about 15 elements deep (face regions, edit histories); a file nested
# far deeper is refused when parsed, so nothing later (merging, writing) can run out of stack.
MAX_DEPTH = 100


class _Builder(ET.TreeBuilder):
    """Keeps comments and records namespace declarations, so output keeps the file's prefixes;
    refuses elements nested deeper than ``MAX_DEPTH``."""

    def __init__(self) -> None:
        super().__init__(insert_comments=True)
        self.declared: list[tuple[str, str]] = []
        self.depth = 0

    def start_ns(self, prefix: str, uri: str) -> None:
        self.declared.append((prefix, uri))

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SidecarError(f"elements nested more than {MAX_DEPTH} deep, which XMP never needs")
        return super().start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        self.depth -= 1
        return super().end(tag)


def parse_packet(data: bytes) -> tuple[ET.Element, list[tuple[str, str]]]:
    """The existing packet's x:xmpmeta element and its (prefix, uri) declarations, in file order."""
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as exc:
        raise SidecarError(
            f"refusing to parse: it declares a DTD or entities ({type(exc).__name__}), "
            "which XMP never needs and XML entity attacks rely on"
        ) from exc
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise SidecarError(f"not well-formed XML: {exc}") from exc
    if root.tag == RDF_RDF:  # a bare rdf:RDF packet is valid XMP; give it the usual wrapper
        wrapper = ET.Element(XMPMETA)
        wrapper.append(root)
        root = wrapper
    elif root.tag != XMPMETA:
        raise SidecarError(f"not an XMP sidecar: root element is {root.tag!r}, not x:xmpmeta")
    if root.find(RDF_RDF) is None:
        ET.SubElement(root, RDF_RDF)
    return root, builder.declared


def new_packet() -> ET.Element:
    root = ET.Element(XMPMETA)
    ET.SubElement(root, RDF_RDF)
    return root


def descriptions_of(root: ET.Element) -> list[ET.Element]:
    """The top-level rdf:Description elements; photobatch writes new properties into the first."""
    rdf = root.find(RDF_RDF)
    assert rdf is not None
    found = rdf.findall(RDF_DESCRIPTION)
    if not found:
        found = [ET.SubElement(rdf, RDF_DESCRIPTION, {RDF_ABOUT: ""})]
    return found
