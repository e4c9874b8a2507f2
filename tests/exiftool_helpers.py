"""Reading sidecars back as darktable or digiKam would: with exiftool, shared by the tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def keywords_and_description(sidecar: Path) -> dict[str, Any]:
    """exiftool's ``Subject`` (always a list of strings) and ``Description`` of a sidecar."""
    out = subprocess.run(
        ["exiftool", "-j", "-Subject", "-Description", str(sidecar)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(out.stdout)[0]
    subject = found.get("Subject", [])
    found["Subject"] = [str(s) for s in (subject if isinstance(subject, list) else [subject])]
    return found
