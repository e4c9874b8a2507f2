"""The XMP sidecar writer: keywords and caption where darktable, digiKam, Lightroom and Immich look.

An XMP sidecar is shared with the user and other applications, so a render never rewrites it from
scratch: the existing packet is parsed (with defusedxml, since sidecars arrive from anywhere), only
what photobatch itself wrote earlier is replaced, and everything else is written back as it was.
What photobatch wrote is recorded in the sidecar itself, in the ``photobatch:`` namespace: only the
keyword values it *added* to each keyword property, and the caption it last wrote. Anything not in
that ledger belongs to someone else and is never removed.

Modules, in the order a render uses them: ``vocabulary`` (namespaces and keyword properties),
``parse``, ``merge``, ``serialize``; ``writer`` holds ``XmpWriter``.
"""

from __future__ import annotations

from photobatch.core.hooks import hookimpl

from .writer import XmpWriter, clean_keywords

__all__ = ["XmpWriter", "clean_keywords", "photobatch_sidecar_writers"]


@hookimpl
def photobatch_sidecar_writers() -> list[XmpWriter]:
    """photobatch's own XMP writer, registered like any third-party plugin."""
    return [XmpWriter()]
