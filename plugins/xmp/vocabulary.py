"""The XMP vocabulary photobatch writes: namespaces, property names and its keyword properties.

Names are in ElementTree's Clark notation (``{uri}local``). Each keyword property has a ledger
property in the ``photobatch:`` namespace listing the values photobatch added to it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
