"""The XMP sidecar writer, checked the way a user would: by reading the files back with exiftool
(the reader Immich uses) and by checking that nothing the user or another app wrote is lost."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
import xml.sax.saxutils
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photobatch.core.config import SidecarConfig
from photobatch.core.hooks import SidecarError, sidecar_writers
from photobatch.core.records import Analysis, PhotoRecord
from photobatch.library.sidecars import SidecarSync
from photobatch.plugins.xmp import XmpWriter, clean_keywords

DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

WRITER = XmpWriter()

# What a darktable user's sidecar looks like after some editing: keywords, a user-written
# description, a rating and darktable's own data written as attributes and elements, and a second
# rdf:Description from another tool with a namespace photobatch has never heard of.
USER_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4"
    darktable:history_end="2">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>Beach</rdf:li></rdf:Bag></dc:subject>
   <dc:description>
    <rdf:Alt><rdf:li xml:lang="x-default">Grandma's birthday</rdf:li></rdf:Alt>
   </dc:description>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:params="0000"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1" darktable:params="gz48"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:acme="https://acme.example/ns/" acme:mood="great">
   <acme:note>keep me</acme:note>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
""".encode()

# Tags photobatch manages (plus its own ledger); every other tag must read back unchanged.
LIST_TAGS = {"XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList"}
MANAGED = LIST_TAGS | {"XMP-dc:Description"}


def record(keywords: list[str], caption: str | None = None) -> PhotoRecord:
    return PhotoRecord(
        path=Path("IMG_0001.jpg"),
        sha256="ab" * 32,
        status="ok",
        analysis=Analysis(sha256="ab" * 32, hashtags=keywords, caption=caption),
    )


@pytest.fixture(scope="session")
def exiftool() -> str:
    """exiftool is the reference reader; only outside CI may a test skip for want of it."""
    path = shutil.which("exiftool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool missing: CI must have it")
        pytest.skip("exiftool not installed")
    return path


def read_tags(exiftool: str, path: Path) -> dict[str, Any]:
    """Every XMP tag exiftool sees, by group:name, lists always as lists."""
    out = subprocess.run(
        [exiftool, "-j", "-struct", "-G1", "-XMP:all", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    tags = json.loads(out)[0]
    tags.pop("SourceFile")
    for name in LIST_TAGS & tags.keys():
        if not isinstance(tags[name], list):  # exiftool prints a one-item list as a plain value
            tags[name] = [tags[name]]
    return tags


def unmanaged(tags: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in tags.items() if k not in MANAGED and not k.startswith("XMP-photobatch:")
    }


def render_to(path: Path, rec: PhotoRecord) -> bytes:
    """One render as the core does it: merge with what is on disk, write the result."""
    existing = path.read_bytes() if path.exists() else None
    content = WRITER.render(rec, existing)
    path.write_bytes(content)
    return content


def items(content: bytes, prop: str) -> list[str]:
    """The rdf:li values of one property, read with a plain XML parser."""
    root = ET.fromstring(content)
    return [li.text or "" for el in root.iter(prop) for li in el.iter(f"{{{RDF}}}li")]


def test_writer_is_discovered() -> None:
    writer = sidecar_writers()["xmp"]
    assert (writer.name, writer.suffix) == ("xmp", ".xmp")


def test_new_sidecar_reads_back_in_exiftool(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "IMG_0001.jpg.xmp"
    render_to(path, record(["dog", "beach", "sunset"], "A dog running on the beach"))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == ["dog", "beach", "sunset"]
    assert tags["XMP-dc:Description"] == "A dog running on the beach"
    assert tags["XMP-lr:HierarchicalSubject"] == [
        "photobatch|dog",
        "photobatch|beach",
        "photobatch|sunset",
    ]
    assert tags["XMP-digiKam:TagsList"] == [
        "photobatch/dog",
        "photobatch/beach",
        "photobatch/sunset",
    ]


def test_unicode_keywords_round_trip_through_exiftool(tmp_path: Path, exiftool: str) -> None:
    keywords = ["café", "naïve résumé", "🐶", "犬と海", "Ωmega & <sons>"]
    caption = 'Ein Hund am Strand — 海辺の犬 🐕 "quoted" & <tagged>'
    path = tmp_path / "photo.xmp"
    render_to(path, record(keywords, caption))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == keywords
    assert tags["XMP-dc:Description"] == caption
    assert tags["XMP-digiKam:TagsList"] == [f"photobatch/{k}" for k in keywords]


def test_user_data_survives_two_renders(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "IMG_0001.jpg.xmp"
    path.write_bytes(USER_SIDECAR)
    before = read_tags(exiftool, path)

    render_to(path, record(["beach", "dog"], "A dog on a beach"))
    content = render_to(path, record(["cat"], "A cat"))

    after = read_tags(exiftool, path)
    # "beach" matched the user's "Beach", so it stayed theirs; "dog" was photobatch's and went.
    assert after["XMP-dc:Subject"] == ["holiday", "Beach", "cat"]
    assert after["XMP-dc:Description"] == "Grandma's birthday"
    assert after["XMP-lr:HierarchicalSubject"] == ["photobatch|cat"]
    assert unmanaged(after) == unmanaged(before)  # rating, darktable history, acme, toolkit
    assert after["XMP-xmp:Rating"] == 4
    assert [step["Operation"] for step in after["XMP-darktable:History"]] == [
        "exposure",
        "colorin",
    ]
    text = content.decode()
    for kept in ('xmp:Rating="4"', 'darktable:history_end="2"', "<darktable:history>"):
        assert kept in text
    assert 'xmlns:darktable="http://darktable.sf.net/"' in text
    assert "<acme:note>keep me</acme:note>" in text


def test_only_keywords_photobatch_added_are_removed(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "p.xmp"
    path.write_bytes(WRITER.render(record([]), None))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-dc:Subject=dog", str(path)])

    render_to(path, record(["dog", "cat"]))
    assert read_tags(exiftool, path)["XMP-dc:Subject"] == ["dog", "cat"]
    render_to(path, record([]))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == ["dog"]  # the user's, though photobatch once suggested it
    assert "XMP-lr:HierarchicalSubject" not in tags
    assert "XMP-digiKam:TagsList" not in tags


def test_rerender_is_byte_identical() -> None:
    rec = record(["beach", "dog", "夕日"], "A dog on a beach")
    for existing in (None, USER_SIDECAR):
        once = WRITER.render(rec, existing)
        assert WRITER.render(rec, once) == once
    assert WRITER.render(rec, None) == WRITER.render(rec, None)


def test_caption_follows_photobatch_until_the_user_edits_it(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "p.xmp"
    render_to(path, record(["dog"], "A dog"))
    render_to(path, record(["dog"], "A brown dog"))
    assert read_tags(exiftool, path)["XMP-dc:Description"] == "A brown dog"

    edit = [exiftool, "-q", "-overwrite_original", "-XMP-dc:Description=Rex at the lake", str(path)]
    subprocess.run(edit, check=True)
    render_to(path, record(["dog"], "A dog in the water"))
    assert read_tags(exiftool, path)["XMP-dc:Description"] == "Rex at the lake"
    render_to(path, record(["dog"], None))
    assert read_tags(exiftool, path)["XMP-dc:Description"] == "Rex at the lake"


def test_photobatch_caption_is_removed_when_there_is_none(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "p.xmp"
    render_to(path, record(["dog"], "A dog"))
    render_to(path, record(["dog"], None))
    assert "XMP-dc:Description" not in read_tags(exiftool, path)


def test_merges_a_sidecar_exiftool_wrote(tmp_path: Path, exiftool: str) -> None:
    path = tmp_path / "IMG_0002.xmp"
    subprocess.run(
        [
            exiftool,
            "-q",
            "-o",
            str(path),
            "-XMP-dc:Subject=foo",
            "-XMP-dc:Subject=Bar baz",
            "-XMP-xmp:Rating=2",
            "-XMP-dc:Description=My own words",
            "-XMP-lr:HierarchicalSubject=Places|Home",
        ],
        check=True,
    )
    before = read_tags(exiftool, path)
    render_to(path, record(["dog", "foo"], "A dog"))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == ["foo", "Bar baz", "dog"]
    assert tags["XMP-dc:Description"] == "My own words"
    assert tags["XMP-lr:HierarchicalSubject"] == [
        "Places|Home",
        "photobatch|dog",
        "photobatch|foo",
    ]
    assert unmanaged(tags) == unmanaged(before)

    # exiftool edits our output in turn; photobatch's next render still knows what it added.
    add = [exiftool, "-q", "-overwrite_original", "-XMP-dc:Subject+=kept", str(path)]
    subprocess.run(add, check=True)
    render_to(path, record(["cat"], "A cat"))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == ["foo", "Bar baz", "kept", "cat"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["Places|Home", "photobatch|cat"]
    assert tags["XMP-digiKam:TagsList"] == ["photobatch/cat"]


def test_bare_rdf_and_attribute_properties_are_understood(exiftool: str, tmp_path: Path) -> None:
    """Some writers omit x:xmpmeta or write simple values as attributes; nothing may be lost."""
    bare = (
        f'<rdf:RDF xmlns:rdf="{RDF}"><rdf:Description rdf:about="" xmlns:dc="{DC}" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" dc:subject="mine" xmp:Label="Red"/></rdf:RDF>'
    ).encode()
    path = tmp_path / "p.xmp"
    path.write_bytes(bare)
    content = render_to(path, record(["dog"], "A dog"))
    tags = read_tags(exiftool, path)
    assert tags["XMP-dc:Subject"] == ["mine", "dog"]
    assert tags["XMP-xmp:Label"] == "Red"
    assert WRITER.render(record(["dog"], "A dog"), content) == content


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE x:xmpmeta [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" dc:title="&lol9;"/>
</rdf:RDF></x:xmpmeta>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x:xmpmeta [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&secret;</x:xmpmeta>"""


@pytest.mark.parametrize("attack", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "external"])
def test_entity_attacks_are_refused(attack: bytes) -> None:
    with pytest.raises(SidecarError, match="entities"):
        WRITER.render(record(["dog"]), attack)


@pytest.mark.parametrize(
    "content",
    [
        b"this is not xml at all",
        b"\x89PNG\r\n\x1a\n\x00\x00binary",
        b"<html><body>a web page</body></html>",
        USER_SIDECAR[: len(USER_SIDECAR) // 2],
    ],
    ids=["text", "binary", "not-xmp", "truncated"],
)
def test_malformed_sidecar_raises(content: bytes) -> None:
    with pytest.raises(SidecarError, match=r"XML|XMP"):
        WRITER.render(record(["dog"]), content)


def test_core_leaves_a_malformed_sidecar_untouched(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_0003.jpg"
    sidecar = tmp_path / "IMG_0003.jpg.xmp"
    sidecar.write_bytes(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>")
    problems = SidecarSync(SidecarConfig(formats=("xmp",))).write(
        PhotoRecord(path=photo, sha256="00", status="ok", analysis=Analysis("00", ["dog"]))
    )
    assert len(problems) == 1 and "left untouched" in problems[0]
    assert sidecar.read_bytes() == b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>"


# -- properties -----------------------------------------------------------------------------------

# Keywords a user can have in a sidecar: any XML-representable text.
user_keyword = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
# Keywords photobatch may be handed: anything at all, control characters included.
suggested = st.lists(st.text(max_size=10), max_size=6)


def user_sidecar(keywords: list[str]) -> bytes:
    """A sidecar as another app would write it, with the user's keywords and a rating."""
    root = ET.Element("{adobe:ns:meta/}xmpmeta")
    rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    desc = ET.SubElement(
        rdf,
        f"{{{RDF}}}Description",
        {f"{{{RDF}}}about": "", "{http://ns.adobe.com/xap/1.0/}Rating": "5"},
    )
    for prop, values in (
        (f"{{{DC}}}subject", keywords),
        (f"{{{LR}}}hierarchicalSubject", ["Places|Home"]),
    ):
        bag = ET.SubElement(ET.SubElement(desc, prop), f"{{{RDF}}}Bag")
        for value in values:
            ET.SubElement(bag, f"{{{RDF}}}li").text = value
    return ET.tostring(root)


def folded(values: list[str]) -> set[str]:
    return {v.casefold() for v in values}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    theirs=st.lists(user_keyword, max_size=6, unique=True),
    renders=st.lists(suggested, min_size=1, max_size=4),
)
def test_user_keywords_survive_any_renders(theirs: list[str], renders: list[list[str]]) -> None:
    content = user_sidecar(theirs)
    for keywords in renders:
        content = WRITER.render(record(keywords), content)
        ours = clean_keywords(keywords)
        subject = items(content, f"{{{DC}}}subject")
        hierarchical = items(content, f"{{{LR}}}hierarchicalSubject")
        tags = items(content, f"{{{DIGIKAM}}}TagsList")
        assert all(k in subject for k in theirs)
        # Exactly the user's values plus photobatch's current keywords, nothing stale:
        assert folded(subject) == folded(theirs) | folded(ours)
        assert folded(hierarchical) == {"places|home"} | folded(["photobatch|" + k for k in ours])
        assert folded(tags) == folded(["photobatch/" + k for k in ours])
        assert b'Rating="5"' in content
        assert WRITER.render(record(keywords), content) == content


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_render_or_raise_sidecar_error(content: bytes) -> None:
    with contextlib.suppress(SidecarError):
        WRITER.render(record(["dog"]), content)


# Namespaces a user's tree may use, each with the prefix its file declares: odd URIs, prefixes
# that clash with the ones photobatch writes, and no namespace at all.
ODD_NAMESPACES = [
    ("", ""),
    ("acme", "https://acme.example/ns/"),
    ("dc", "urn:not-dublin-core"),
    ("photobatch", "http://example.com/someone-else#"),
    ("u", "https://ünïcødé.example/ns/ a b"),
    ("dcx", DC),  # Dublin Core itself, with properties photobatch does not manage
]
xml_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from("\t\n\r"),
    max_size=8,
)
local_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,6}", fullmatch=True).filter(
    lambda name: name not in {"subject", "description"}
)
qualified = st.tuples(st.integers(0, len(ODD_NAMESPACES) - 1), local_name)
attributes = st.dictionaries(qualified, xml_text, max_size=3)
# An element: (name, attributes, text of a leaf or None, children).
leaf = st.tuples(qualified, attributes, xml_text, st.just([]))
tree = st.recursive(
    leaf,
    lambda children: st.tuples(qualified, attributes, st.none(), st.lists(children, max_size=4)),
    max_leaves=12,
)


def _name(name: tuple[int, str]) -> str:
    prefix = ODD_NAMESPACES[name[0]][0]
    return f"{prefix}:{name[1]}" if prefix else name[1]


def _clark(name: tuple[int, str]) -> str:
    uri = ODD_NAMESPACES[name[0]][1]
    return f"{{{uri}}}{name[1]}" if uri else name[1]


def _quote(text: str) -> str:
    return xml.sax.saxutils.quoteattr(text, {"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"})


def _xml(element: tuple) -> str:
    name, attrs, text, children = element
    head = _name(name) + "".join(f" {_name(k)}={_quote(v)}" for k, v in attrs.items())
    inner = xml.sax.saxutils.escape(text, {"\r": "&#13;"}) if text is not None else ""
    return f"<{head}>{inner}{''.join(_xml(c) for c in children)}</{_name(name)}>"


def _shape(element: tuple) -> tuple:
    """What must survive of a generated element: names, attributes, a leaf's exact text."""
    name, attrs, text, children = element
    attrs = {_clark(k): v for k, v in attrs.items()}
    return (_clark(name), attrs, text or "", [_shape(c) for c in children])


def _parsed_shape(element: ET.Element) -> tuple:
    """The same for an element read back (whitespace between child elements is layout)."""
    text = "" if len(element) else element.text or ""
    return (element.tag, dict(element.attrib), text, [_parsed_shape(c) for c in element])


def _chain(element: tuple, depth: int) -> tuple:
    for _ in range(depth):
        element = ((1, "nest"), {}, None, [element])
    return element


def _depth(element: tuple) -> int:
    return 1 + max((_depth(c) for c in element[3]), default=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    trees=st.lists(tree, min_size=1, max_size=3),
    on_description=attributes,
    nesting=st.integers(0, 110),
    keywords=suggested,
    caption=st.none() | st.text(max_size=20),
)
def test_any_user_tree_survives_the_merge_or_is_refused(
    trees: list[tuple],
    on_description: dict,
    nesting: int,
    keywords: list[str],
    caption: str | None,
) -> None:
    trees = [trees[0] if nesting == 0 else _chain(trees[0], nesting), *trees[1:]]
    declarations = " ".join(f"xmlns:{p}={_quote(uri)}" for p, uri in ODD_NAMESPACES if p)
    description_attrs = "".join(f" {_name(k)}={_quote(v)}" for k, v in on_description.items())
    existing = (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/" {declarations}><rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about=""{description_attrs}>{"".join(map(_xml, trees))}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    rec = record(keywords, caption)
    too_deep = 3 + max(map(_depth, trees)) > 100  # below x:xmpmeta, rdf:RDF, rdf:Description
    try:
        content = WRITER.render(rec, existing)
    except SidecarError as exc:
        assert too_deep and "nested more than 100 deep" in str(exc)
        return
    assert not too_deep
    [description] = ET.fromstring(content).iter(f"{{{RDF}}}Description")
    theirs = [c for c in description if c.tag in {_clark(t[0]) for t in trees}]
    assert [_parsed_shape(c) for c in theirs] == [_shape(t) for t in trees]
    assert description.attrib.items() >= {_clark(k): v for k, v in on_description.items()}.items()
    assert WRITER.render(rec, content) == content


def test_a_caption_below_the_confidence_threshold_is_not_written(
    tmp_path: Path, exiftool: str
) -> None:
    photo = tmp_path / "IMG_0003.jpg"
    sync = SidecarSync(SidecarConfig(formats=("xmp", "json"), min_caption_confidence=0.3))

    def scan(confidence: float | None) -> None:
        analysis = Analysis("cd" * 32, caption="A pizza on a plate.", hashtags=["pizza", "food"])
        analysis.caption_confidence = confidence
        assert sync.write(PhotoRecord(photo, "cd" * 32, "ok", analysis=analysis)) == []

    scan(0.9)
    assert read_tags(exiftool, tmp_path / "IMG_0003.jpg.xmp")["XMP-dc:Description"] == (
        "A pizza on a plate."
    )
    scan(0.2)  # a weak caption: no description rather than a wrong one; keywords stay
    tags = read_tags(exiftool, tmp_path / "IMG_0003.jpg.xmp")
    assert "XMP-dc:Description" not in tags
    assert tags["XMP-dc:Subject"] == ["pizza", "food"]
    assert json.loads((tmp_path / "IMG_0003.jpg.json").read_text())["caption"] is None
    scan(None)  # analysed before confidences existed: its caption is still written
    assert "XMP-dc:Description" in read_tags(exiftool, tmp_path / "IMG_0003.jpg.xmp")
