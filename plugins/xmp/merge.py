"""Merging photobatch's keywords and caption into a parsed packet, keeping everything else.

Only the values the ledger says photobatch added earlier are replaced; a value anyone else wrote
(in any letter case) stays, and a description the user wrote is never overwritten.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .vocabulary import (
    CAPTION_LEDGER,
    CONTAINERS,
    DC_DESCRIPTION,
    RDF,
    RDF_LI,
    XML_LANG,
    KeywordProperty,
)


def find_property(descriptions: list[ET.Element], name: str) -> ET.Element | None:
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
    prop = find_property(descriptions, name)
    if prop is None:
        return []
    return [li.text or "" for li in _container(prop, f"{{{RDF}}}Bag") if li.tag == RDF_LI]


def _set_items(
    descriptions: list[ET.Element], name: str, kind: str, items: list[ET.Element]
) -> None:
    """Make property ``name`` hold exactly ``items`` (and nothing at all when there are none)."""
    prop = find_property(descriptions, name)
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


def merge_keywords(
    descriptions: list[ET.Element], prop: KeywordProperty, keywords: list[str]
) -> None:
    """Replace the values photobatch added earlier by ``keywords``; keep every other value.

    A keyword someone else already has (in any letter case) is theirs: photobatch does not add it
    again, so it never lands in the ledger and is never removed.
    """
    added_before = set(_items(descriptions, prop.ledger))
    element = find_property(descriptions, prop.name)
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


def merge_caption(descriptions: list[ET.Element], caption: str | None) -> None:
    """Write ``caption`` as dc:description unless the user has written their own there."""
    ledger = find_property(descriptions, CAPTION_LEDGER)
    written_before = ledger.text if ledger is not None else None
    prop = find_property(descriptions, DC_DESCRIPTION)
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
