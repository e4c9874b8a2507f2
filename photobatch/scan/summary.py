"""What one scan did, as counted for its summary line, the scans table and ``status``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from photobatch.core.errors import UserError


class ScanError(UserError):
    """A problem that stops the whole scan (as opposed to one bad file, which is recorded)."""


@dataclass
class ScanSummary:
    found: int = 0
    new: int = 0
    changed: int = 0
    reused: int = 0  # new paths whose content was already analysed: moves, renames, copies
    unchanged: int = 0
    reanalysed: int = 0  # unchanged files analysed again: other model versions, or --reanalyse
    analyzed: int = 0
    errors: int = 0
    still_unreadable: int = 0  # unchanged files that an earlier scan found unreadable
    missing: int = 0
    personalized: int = 0  # photos analysed earlier, re-ranked by a newly trained personal head
    sidecar_problems: int = 0
    stopped: bool = False  # a stop signal ended it after a batch: the next scan does the rest
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "problems"}

    def line(self) -> str:
        parts = [
            f"{self.new} new",
            f"{self.changed} changed",
            f"{self.reused} reused (moved or copied)",
            f"{self.unchanged} unchanged",
            f"{self.errors} unreadable",
            *([f"{self.still_unreadable} still unreadable"] if self.still_unreadable else []),
            f"{self.missing} missing",
        ]
        if self.reanalysed:
            parts.append(f"{self.reanalysed} re-analysed (new models or --reanalyse)")
        if self.personalized:
            parts.append(f"{self.personalized} re-ranked by your personal head")
        if self.sidecar_problems:
            parts.append(f"{self.sidecar_problems} sidecar problems")
        if self.stopped:
            parts.append("stopped before the end: the next scan does the rest")
        return (
            f"photobatch: {self.found} photos: {', '.join(parts)}; "
            f"{self.analyzed} analysed in {self.seconds:.1f}s"
        )
