"""The XMP sidecar writer: keywords and caption where darktable, digiKam, Lightroom and Immich look.

An XMP sidecar is shared with the user and other applications, so a render never rewrites it from
scratch: the existing packet is parsed (with defusedxml, since sidecars arrive from anywhere), only
what photobatch itself wrote earlier is replaced, and everything else is written back as it was.
What photobatch wrote is recorded in the sidecar itself, in the ``photobatch:`` namespace: only the
keyword values it *added* to each keyword property, and the caption it last wrote. Anything not in
that ledger belongs to someone else and is never removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from photobatch.core.hooks import SidecarError, hookimpl
from photobatch.core.records import PhotoRecord

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
PHOTOBATCH = "https://photobatch.dev/ns/1.0/"
XML = "http://www.w3.org/XML/1998/namespace"

# Declared on every sidecar, in this order, with these prefixes: the readers we target expect them.
STANDARD_PREFIXES = {
    X: "x",
    RDF: "rdf",
    DC: "dc",
    LR: "lr",
    DIGIKAM: "digiKam",
    PHOTOBATCH: "photobatch",
}

XMPMETA = f"{{{X}}}xmpmeta"
RDF_RDF = f"{{{RDF}}}RDF"
RDF_DESCRIPTION = f"{{{RDF}}}Description"
RDF_ABOUT = f"{{{RDF}}}about"
RDF_LI = f"{{{RDF}}}li"
RDF_PARSE_TYPE = f"{{{RDF}}}parseType"
CONTAINERS = {f"{{{RDF}}}{kind}" for kind in ("Bag", "Seq", "Alt")}
XML_LANG = f"{{{XML}}}lang"
DC_DESCRIPTION = f"{{{DC}}}description"
CAPTION_LEDGER = f"{{{PHOTOBATCH}}}description"

# Elements that hold properties or items, never text: whitespace in them is layout.
_STRUCTURE = frozenset({XMPMETA, RDF_RDF, RDF_DESCRIPTION, *CONTAINERS})

# Real applications nest XMP about 15 elements deep (face regions, edit histories); a file nested
# far deeper is refused when parsed, so nothing later (merging, writing) can run out of stack.
MAX_DEPTH = 100

XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
XPACKET_END = '<?xpacket end="w"?>'
INDENT = " "

# Characters XML 1.0 cannot carry; a keyword holding one would make the sidecar unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class KeywordProperty:
    """One keyword property, how photobatch spells a keyword in it, and its ledger property."""

    name: str  # Clark name, e.g. "{http://purl.org/dc/elements/1.1/}subject"
    container: str  # the rdf container readers expect
    prefix: str  # prepended to a keyword: the hierarchy photobatch's tags live under
    ledger: str  # Clark name of the photobatch property listing the values photobatch added


KEYWORD_PROPERTIES = (
    KeywordProperty(f"{{{DC}}}subject", f"{{{RDF}}}Bag", "", f"{{{PHOTOBATCH}}}addedSubject"),
    KeywordProperty(
        f"{{{LR}}}hierarchicalSubject",
        f"{{{RDF}}}Bag",
        "photobatch|",
        f"{{{PHOTOBATCH}}}addedHierarchicalSubject",
    ),
    KeywordProperty(
        f"{{{DIGIKAM}}}TagsList", f"{{{RDF}}}Seq", "photobatch/", f"{{{PHOTOBATCH}}}addedTagsList"
    ),
)

LEDGERS = (*(prop.ledger for prop in KEYWORD_PROPERTIES), CAPTION_LEDGER)


class XmpWriter:
    """Merges photobatch's keywords and caption into an XMP sidecar."""

    name = "xmp"
    suffix = ".xmp"

    def render(self, record: PhotoRecord, existing: bytes | None) -> bytes:
        """Return the merged sidecar; raise ``SidecarError`` rather than risk the user's data."""
        if existing is None or not existing.strip():
            root, declared = _new_packet(), []
        else:
            root, declared = _parse(existing)
        descriptions = _descriptions(root)
        keywords = clean_keywords(record.keywords)
        for prop in KEYWORD_PROPERTIES:
            _merge_keywords(descriptions, prop, keywords)
        caption = record.analysis.caption if record.analysis else None
        _merge_caption(descriptions, _NOT_XML.sub("", caption) if caption else None)
        return _serialize(root, declared)

    def wrote(self, existing: bytes) -> bool:
        """Whether photobatch wrote into ``existing``: its ledger is there."""
        try:
            descriptions = _descriptions(_parse(existing)[0])
        except SidecarError:
            return False
        return any(_find(descriptions, name) is not None for name in LEDGERS)


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


# -- parsing --------------------------------------------------------------------------------------


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


def _parse(data: bytes) -> tuple[ET.Element, list[tuple[str, str]]]:
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


def _new_packet() -> ET.Element:
    root = ET.Element(XMPMETA)
    ET.SubElement(root, RDF_RDF)
    return root


def _descriptions(root: ET.Element) -> list[ET.Element]:
    """The top-level rdf:Description elements; photobatch writes new properties into the first."""
    rdf = root.find(RDF_RDF)
    assert rdf is not None
    found = rdf.findall(RDF_DESCRIPTION)
    if not found:
        found = [ET.SubElement(rdf, RDF_DESCRIPTION, {RDF_ABOUT: ""})]
    return found


# -- merging --------------------------------------------------------------------------------------


def _find(descriptions: list[ET.Element], name: str) -> ET.Element | None:
    """The first element for property ``name``; the attribute form is turned into an element
    (so it can take an array), keeping its value."""
    for description in descriptions:
        element = description.find(name)
        if element is not None:
            return element
    for description in descriptions:
        if name in description.attrib:
            element = ET.SubElement(description, name)
            element.text = description.attrib.pop(name)
            return element
    return None


def _container(prop: ET.Element, kind: str) -> ET.Element:
    """``prop``'s rdf container, retagged to ``kind``; a plain-text value becomes its one item."""
    for child in prop:
        if child.tag in CONTAINERS:
            child.tag = kind
            return child
    container = ET.Element(kind)
    text = (prop.text or "").strip()
    if text:
        item = ET.SubElement(
            container, RDF_LI, {XML_LANG: "x-default"} if kind.endswith("Alt") else {}
        )
        item.text = text
    prop.text = None
    prop.insert(0, container)
    return container


def _items(descriptions: list[ET.Element], name: str) -> list[str]:
    """The values of array property ``name`` (the ledger), however it was spelled."""
    prop = _find(descriptions, name)
    if prop is None:
        return []
    return [li.text or "" for li in _container(prop, f"{{{RDF}}}Bag") if li.tag == RDF_LI]


def _set_items(
    descriptions: list[ET.Element], name: str, kind: str, items: list[ET.Element]
) -> None:
    """Make property ``name`` hold exactly ``items`` (and nothing at all when there are none)."""
    prop = _find(descriptions, name)
    if not items:
        if prop is not None:
            _remove(descriptions, prop)
        return
    if prop is None:
        prop = ET.SubElement(descriptions[0], name)
    container = _container(prop, kind)
    container[:] = items


def _remove(descriptions: list[ET.Element], prop: ET.Element) -> None:
    """Drop a property element; ElementTree has no parent links, so look in each Description."""
    for description in descriptions:
        if any(child is prop for child in description):
            description.remove(prop)
            return


def _li(text: str) -> ET.Element:
    item = ET.Element(RDF_LI)
    item.text = text
    return item


def _merge_keywords(
    descriptions: list[ET.Element], prop: KeywordProperty, keywords: list[str]
) -> None:
    """Replace the values photobatch added earlier by ``keywords``; keep every other value.

    A keyword someone else already has (in any letter case) is theirs: photobatch does not add it
    again, so it never lands in the ledger and is never removed.
    """
    added_before = set(_items(descriptions, prop.ledger))
    element = _find(descriptions, prop.name)
    theirs = []
    if element is not None:
        theirs = [
            child
            for child in _container(element, prop.container)
            if child.tag != RDF_LI or (child.text or "") not in added_before
        ]
    taken = {(child.text or "").casefold() for child in theirs if child.tag == RDF_LI}
    added = [prop.prefix + k for k in keywords if (prop.prefix + k).casefold() not in taken]
    _set_items(descriptions, prop.name, prop.container, theirs + [_li(v) for v in added])
    _set_items(descriptions, prop.ledger, f"{{{RDF}}}Bag", [_li(v) for v in added])


def _merge_caption(descriptions: list[ET.Element], caption: str | None) -> None:
    """Write ``caption`` as dc:description unless the user has written their own there."""
    ledger = _find(descriptions, CAPTION_LEDGER)
    written_before = ledger.text if ledger is not None else None
    prop = _find(descriptions, DC_DESCRIPTION)
    alt = _container(prop, f"{{{RDF}}}Alt") if prop is not None else None
    items = [li for li in alt if li.tag == RDF_LI] if alt is not None else []
    default = next((li for li in items if li.get(XML_LANG) == "x-default"), None)
    shown = default if default is not None else (items[0] if items else None)
    current = (shown.text or "") if shown is not None else ""
    if current.strip() and current != written_before:
        caption = None  # the user's description: leave it, and forget photobatch ever wrote one
    elif caption:
        if default is None:
            if prop is None:
                prop = ET.SubElement(descriptions[0], DC_DESCRIPTION)
                alt = _container(prop, f"{{{RDF}}}Alt")
            assert alt is not None
            default = ET.Element(RDF_LI, {XML_LANG: "x-default"})
            alt.insert(0, default)
        default.text = caption
    elif default is not None and current.strip():  # photobatch's old caption, no new one
        assert alt is not None and prop is not None
        alt.remove(default)
        if not len(alt):
            _remove(descriptions, prop)
    if caption:
        if ledger is None:
            ledger = ET.SubElement(descriptions[0], CAPTION_LEDGER)
        ledger.text = caption
    elif ledger is not None:
        _remove(descriptions, ledger)


# -- serializing ----------------------------------------------------------------------------------


def _prefixes(root: ET.Element, declared: list[tuple[str, str]]) -> dict[str, str]:
    """uri -> prefix: the standard ones, then the file's own (renamed only on a clash)."""
    prefixes = dict(STANDARD_PREFIXES)
    uris = dict.fromkeys(uri for _, uri in declared)  # in order of appearance, once each
    for element in root.iter():
        if isinstance(element.tag, str):
            uris[_uri(element.tag)] = None
            uris.update(dict.fromkeys(map(_uri, element.attrib)))
    hints = {uri: prefix for prefix, uri in reversed(declared)}  # the first prefix given
    for uri in uris:
        if not uri or uri == XML or uri in prefixes:
            continue
        prefix = hints.get(uri) or "ns"
        candidate, n = prefix, 1
        while candidate in prefixes.values():
            candidate, n = f"{prefix}{n}", n + 1
        prefixes[uri] = candidate
    return prefixes


def _uri(name: str) -> str:
    return name[1:].partition("}")[0] if name.startswith("{") else ""


def _qname(name: str, prefixes: dict[str, str]) -> str:
    if not name.startswith("{"):
        return name
    uri, _, local = name[1:].partition("}")
    return f"{'xml' if uri == XML else prefixes[uri]}:{local}"


def _text(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("\r", "&#13;")


def _attr(value: str) -> str:
    value = _text(value).replace('"', "&quot;")
    return value.replace("\n", "&#10;").replace("\t", "&#9;")


def _write(element: ET.Element, prefixes: dict[str, str], out: list[str], depth: int) -> None:
    """Pretty-print where whitespace carries no meaning; elsewhere write text exactly."""
    if element.tag is ET.Comment:
        out.append(f"<!--{element.text or ''}-->")
        return
    name = _qname(element.tag, prefixes)
    head = name + "".join(
        f' {_qname(key, prefixes)}="{_attr(value)}"' for key, value in element.attrib.items()
    )
    if depth == 0:
        head += "".join(f'\n{INDENT}xmlns:{p}="{_attr(uri)}"' for uri, p in prefixes.items())
    children = list(element)
    if not children:
        text = element.text or ""
        if element.tag in _STRUCTURE and not text.strip():
            text = ""  # the indentation of children since removed: a packet emptied of
            # photobatch's part then reads exactly as a new empty one
        out.append(f"<{head}>{_text(text)}</{name}>" if text else f"<{head}/>")
        return
    out.append(f"<{head}>")
    pretty = element.get(RDF_PARSE_TYPE) != "Literal" and all(
        not (part or "").strip() for part in [element.text, *(c.tail for c in children)]
    )
    if pretty:
        for child in children:
            out.append("\n" + INDENT * (depth + 1))
            _write(child, prefixes, out, depth + 1)
        out.append("\n" + INDENT * depth)
    else:
        out.append(_text(element.text or ""))
        for child in children:
            _write(child, prefixes, out, depth + 1)
            out.append(_text(child.tail or ""))
    out.append(f"</{name}>")


def _serialize(root: ET.Element, declared: list[tuple[str, str]]) -> bytes:
    out = [XPACKET_BEGIN, "\n"]
    _write(root, _prefixes(root, declared), out, 0)
    out.extend(["\n", XPACKET_END, "\n"])
    return "".join(out).encode("utf-8")


@hookimpl
def photobatch_sidecar_writers() -> list[XmpWriter]:
    """photobatch's own XMP writer, registered like any third-party plugin."""
    return [XmpWriter()]
