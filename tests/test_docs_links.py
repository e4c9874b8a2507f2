"""Every relative link in the README, docs/ and the model cards leads somewhere: to a file of the
repository, and to a heading of it when it names an anchor, as GitHub makes anchors of headings."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *(ROOT / "models").glob("*.md")]

COMMENT = re.compile(r"<!--.*?-->", re.S)  # not rendered (cog's code lives there)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#* *$", re.M)


def rendered(text: str) -> str:
    """The Markdown that GitHub renders as text with links: no comments, no code."""
    return FENCE.sub("", COMMENT.sub("", text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lowercased, punctuation dropped, spaces to hyphens,
    a repeated one numbered (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(rendered(text)):
        words = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
        slug = re.sub(r"[^\w\- ]", "", words.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(f"{slug}-{count}" if count else slug)
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """``page: target (why)`` for each relative link of ``text`` that leads nowhere."""
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", rendered(text))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not ours to check
        path, _, anchor = target.partition("#")
        headed = text  # a bare anchor is one of this page's headings
        if path:
            file = (page.parent / path).resolve()
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
                continue
            headed = file.read_text(encoding="utf-8") if file.suffix == ".md" else None
        if anchor and headed is not None and anchor not in anchors(headed):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_anchor_resolves() -> None:
    assert len(PAGES) > 10
    broken = [b for page in PAGES for b in broken_links(page, page.read_text(encoding="utf-8"))]
    assert broken == []


def test_a_missing_file_or_heading_is_reported_and_code_is_not_read_as_links() -> None:
    page = ROOT / "docs" / "example.md"
    text = (
        "# A `photobatch scan` page\n## Twice\n## Twice\n"
        "[ok](#a-photobatch-scan-page) [ok](#twice-1) [ok](cli.md#photobatch-watch) "
        "[ok](../README.md) ![ok](review.png) [web](https://example.org/x)\n"
        "[gone](nothere.md) [no heading](cli.md#photobatch-fly) [no anchor](#twice-2)\n"
        "`[code](nothere.md)`\n```\n[fenced](nothere.md)\n```\n<!-- [comment](nothere.md) -->\n"
    )
    assert broken_links(page, text) == [
        "example.md: nothere.md (no such file)",
        "example.md: cli.md#photobatch-fly (no such heading)",
        "example.md: #twice-2 (no such heading)",
    ]
