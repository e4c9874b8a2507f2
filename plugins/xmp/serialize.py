"""Writing a packet back: the standard prefixes first, the file's own kept, pretty-printed only
where whitespace carries no meaning, inside an xpacket wrapper."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .vocabulary import (
    CONTAINERS,
    RDF_DESCRIPTION,
    RDF_PARSE_TYPE,
    RDF_RDF,
    STANDARD_PREFIXES,
    XML,
    XMPMETA,
)

XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
XPACKET_END = '<?xpacket end="w"?>'
INDENT = " "
# Elements that hold properties or items, never text: whitespace in them is layout.
_STRUCTURE = frozenset({XMPMETA, RDF_RDF, RDF_DESCRIPTION, *CONTAINERS})


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


def serialize(root: ET.Element, declared: list[tuple[str, str]]) -> bytes:
    out = [XPACKET_BEGIN, "\n"]
    _write(root, _prefixes(root, declared), out, 0)
    out.extend(["\n", XPACKET_END, "\n"])
    return "".join(out).encode("utf-8")
