"""One photo as a card, in HTML: shared by the review page and the contact sheet.

Server-rendered, every value escaped. The page's cards carry the controls its script drives
(approve, reject, edit, hashtags, the post draft, the attention map); the contact sheet's are the
same card without them, its thumbnail embedded as a data URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from photobatch.core.records import USER_SOURCE, Analysis, Review
from photobatch.core.text import format_hashtags
from photobatch.library.reviews import Card

VERDICTS = {"approved": "Approved", "rejected": "Rejected", "edited": "Edited"}
PROVENANCE = {
    "photo": "from the photo",
    "habit": "from your habits (personalized)",
    "you": "added by you",
}


@dataclass(frozen=True)
class CardView:
    """What a card shows of one content, worked out once from its record and review."""

    card: Card
    shown: Analysis  # as reviewed: what sidecars write (before the caption threshold)
    model: Analysis  # the models' current output
    review: Review

    @classmethod
    def of(cls, card: Card) -> CardView:
        record = card.record
        assert record.analysis is not None
        shown = record.reviewed().analysis
        assert shown is not None
        return cls(card, shown, record.analysis, record.review or Review(card.sha256))

    @property
    def state(self) -> str | None:
        return self.review.state

    def provenance(self, tag: str) -> str:
        """Where a hashtag came from: the user, their habits (the personal ranking brought a
        tag the photo's own list did not have) or the photo."""
        if tag in self.review.added:
            return "you"
        model = self.model
        if model.personalized_by and tag in model.hashtags and tag not in model.candidates:
            return "habit"
        return "photo"

    def score(self, tag: str) -> float | None:
        """The models' score of a tag (None for one only the user gave)."""
        return self.model.hashtag_scores.get(tag, self.model.candidate_scores.get(tag))

    @property
    def suggested_caption(self) -> str | None:
        """The models' caption when the user's approved or written one differs from it."""
        mine = self.shown.caption_source == USER_SOURCE
        if mine and self.model.caption and self.model.caption != self.shown.caption:
            return self.model.caption
        return None

    @property
    def suggested_tags(self) -> list[str]:
        """The models' hashtags that an approved card does not hold and the user did not
        remove: a newer model's ideas, offered, never applied."""
        taken = set(self.shown.hashtags) | set(self.review.removed)
        return [t for t in self.model.hashtags if t not in taken]


def render_card(view: CardView, thumbnail: str, *, interactive: bool) -> str:
    """A card's HTML; ``thumbnail`` is the image's URL (the page's) or data URI (a sheet's)."""
    card, shown = view.card, view.shown
    record = card.record
    state = view.state or "unreviewed"
    taken = (record.metadata.taken_at or "")[:10]
    copies = len(card.copies)
    where = escape(str(record.path))
    also = f' <span class="copies">+{copies - 1} copies</span>' if copies > 1 else ""
    parts = [
        f'<article class="card {state}" id="c-{card.sha256}" data-id="{card.sha256}" '
        f'tabindex="-1">',
        f'<a class="thumb" href="{escape(_large(thumbnail, interactive))}" target="_blank" '
        f'rel="noopener"><img src="{escape(thumbnail)}" alt="{escape(record.path.name)}" '
        'loading="lazy" decoding="async" width="240" height="180"></a>',
        f'<div class="meta"><span class="name" title="{where}">{escape(record.path.name)}</span>'
        f"{also}<time>{escape(taken)}</time>"
        f'<span class="verdict">{VERDICTS.get(state, "")}</span></div>',
        _caption(view, interactive),
        _chips(view, interactive),
        _post(view, interactive),
    ]
    if interactive:
        parts.append(
            '<div class="actions">'
            '<button type="button" data-act="approve" title="Approve (a)">Approve</button>'
            '<button type="button" data-act="reject" title="Reject (r)">Reject</button>'
            '<button type="button" data-act="clear" title="Undecide (u)">Undecide</button>'
            '<button type="button" data-act="attention" title="Attention map (m)">Where it '
            "looked</button></div>"
            '<div class="attention" hidden></div>'
        )
    elif shown.labels:
        parts.append(f'<p class="labels">{escape("; ".join(shown.labels))}</p>')
    parts.append("</article>")
    return "".join(parts)


def _large(thumbnail: str, interactive: bool) -> str:
    return thumbnail.replace("/thumb/", "/large/") if interactive else thumbnail


def _caption(view: CardView, interactive: bool) -> str:
    shown = view.shown
    text = shown.caption or ""
    if view.review.caption is not None:
        sure = '<span class="conf you">yours</span>'
    elif view.review.verdict == "approved":
        sure = '<span class="conf you">approved</span>'
    elif shown.caption_confidence is not None:
        source = escape(shown.caption_source or "")
        sure = (
            f'<span class="conf" title="how sure the captioner is ({source})">'
            f"{shown.caption_confidence:.0%}</span>"
        )
    else:
        sure = ""
    if interactive:
        body = (
            f'<textarea class="caption-edit" rows="2" aria-label="caption" '
            f'placeholder="no caption">{escape(text)}</textarea>'
        )
    else:
        body = f'<p class="caption-text">{escape(text) or "<em>no caption</em>"}</p>'
    suggestion = view.suggested_caption
    hint = ""
    if suggestion:
        use = '<button type="button" data-act="use-suggestion">use it</button>'
        use = use if interactive else ""
        hint = f'<p class="suggestion">Models now say: {escape(suggestion)} {use}</p>'
    return f'<div class="caption">{body}{sure}{hint}</div>'


def _chip(view: CardView, tag: str, interactive: bool, *, suggested: bool = False) -> str:
    origin = "suggested" if suggested else view.provenance(tag)
    score = view.score(tag)
    label = "suggested by a newer model" if suggested else PROVENANCE[origin]
    number = f'<span class="score">{score:.2f}</span>' if score is not None else ""
    if not interactive:
        button = ""
    elif suggested:
        button = (
            f'<button type="button" data-act="add" data-tag="{escape(tag)}" title="add">+</button>'
        )
    else:
        button = (
            f'<button type="button" data-act="remove" data-tag="{escape(tag)}" '
            f'title="remove #{escape(tag)}">&times;</button>'
        )
    return f'<li class="chip {origin}" title="{escape(label)}">#{escape(tag)}{number}{button}</li>'


def _chips(view: CardView, interactive: bool) -> str:
    chips = [_chip(view, t, interactive) for t in view.shown.hashtags]
    chips += [_chip(view, t, interactive, suggested=True) for t in view.suggested_tags]
    adder = (
        '<input class="tag-add" type="text" placeholder="add #tag" aria-label="add hashtags">'
        if interactive
        else ""
    )
    return f'<ul class="chips">{"".join(chips)}</ul>{adder}'


def _post(view: CardView, interactive: bool) -> str:
    draft = view.shown.post_text or ""
    if not interactive:
        return f'<p class="post">{escape(draft)}</p>' if draft else ""
    return (
        '<div class="post">'
        f'<textarea class="post-edit" rows="2" aria-label="post draft" '
        f'placeholder="post draft">{escape(draft)}</textarea>'
        f'<button type="button" data-act="copy" '
        f'data-tags="{escape(format_hashtags(view.shown.hashtags))}" '
        'title="Copy the draft and hashtags (c)">Copy post</button></div>'
    )
